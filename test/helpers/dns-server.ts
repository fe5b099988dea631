import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';

/**
 * A tiny authoritative DNS server on UDP loopback, for `cluster.dnsServers`: it answers A queries
 * for one name with a list of loopback addresses, NOERROR without records for the name's other
 * types (AAAA), and NXDOMAIN for every other name. Only what a stub resolver (c-ares, behind
 * node:dns) sends is understood: one question, no compression in it; EDNS records are ignored.
 */
export interface DnsServer {
  /** For `dnsServers`: `127.0.0.1:<port>`. */
  readonly address: string;
  /** Replaces the A records served from now on. */
  setAddresses(addresses: readonly string[]): void;
  /** Questions received so far, as `<name> <type>`. */
  readonly questions: readonly string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE = { noError: 0, formErr: 1, nxDomain: 3, notImp: 4 } as const;
const TYPE_NAMES: Record<number, string> = { 1: 'A', 28: 'AAAA', 5: 'CNAME', 33: 'SRV' };

function loopbackOctets(address: string): number[] {
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets[0] !== 127 || !octets.every((o) => Number.isInteger(o) && o >= 0 && o <= 255)) {
    throw new Error(`the test DNS server answers loopback IPv4 addresses only (127.x.y.z), not ${address}`);
  }
  return octets;
}

/** The question of a query: its name (labels joined with dots), type, class, and where it ends. */
function parseQuestion(query: Buffer): { name: string; type: number; klass: number; end: number } | undefined {
  let offset = 12;
  const labels: string[] = [];
  for (;;) {
    if (offset >= query.length) return undefined;
    const length = query[offset]!;
    offset += 1;
    if (length === 0) break;
    // 0xC0: a compression pointer, which no stub resolver puts in its question; over 63 is invalid.
    if (length > 63 || offset + length > query.length) return undefined;
    labels.push(query.subarray(offset, offset + length).toString('latin1'));
    offset += length;
    if (offset - 12 > 255) return undefined;
  }
  if (offset + 4 > query.length) return undefined;
  return { name: labels.join('.'), type: query.readUInt16BE(offset), klass: query.readUInt16BE(offset + 2), end: offset + 4 };
}

export async function startDnsServer(options: { name: string; addresses: readonly string[] }): Promise<DnsServer> {
  const wanted = options.name.toLowerCase().replace(/\.$/, '');
  let records = options.addresses.map(loopbackOctets);
  const questions: string[] = [];
  const socket = createSocket('udp4');

  function reply(query: Buffer, rcode: number, question?: Buffer, answers: readonly number[][] = []): Buffer {
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0); // the query's ID
    const opcode = (query[2]! >> 3) & 0x0f;
    const rd = query[2]! & 0x01;
    // QR (a response), the query's opcode, AA (authoritative), its RD echoed; RA 0; the rcode.
    header[2] = 0x80 | (opcode << 3) | 0x04 | rd;
    header[3] = rcode & 0x0f;
    header.writeUInt16BE(question ? 1 : 0, 4);
    header.writeUInt16BE(answers.length, 6);
    const records = answers.map((octets) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(1, 6); // TTL: tests change the answer and want it seen
      rr.writeUInt16BE(4, 10);
      Buffer.from(octets).copy(rr, 12);
      return rr;
    });
    return Buffer.concat([header, ...(question ? [question] : []), ...records]);
  }

  function answer(query: Buffer): Buffer | undefined {
    if (query.length < 12) return undefined; // not even a header to answer to
    if (query[2]! & 0x80) return undefined; // a response: never answer one
    const opcode = (query[2]! >> 3) & 0x0f;
    if (opcode !== 0) return reply(query, RCODE.notImp);
    if (query.readUInt16BE(4) !== 1) return reply(query, RCODE.formErr);
    const question = parseQuestion(query);
    if (!question) return reply(query, RCODE.formErr);
    const echoed = query.subarray(12, question.end);
    questions.push(`${question.name} ${TYPE_NAMES[question.type] ?? question.type}`);
    if (question.name.toLowerCase() !== wanted) return reply(query, RCODE.nxDomain, echoed);
    if (question.type !== TYPE_A || question.klass !== CLASS_IN) return reply(query, RCODE.noError, echoed);
    return reply(query, RCODE.noError, echoed, records);
  }

  socket.on('message', (query: Buffer, from: RemoteInfo) => {
    const response = answer(query);
    if (response) socket.send(response, from.port, from.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    address: `127.0.0.1:${socket.address().port}`,
    questions,
    setAddresses(addresses) {
      records = addresses.map(loopbackOctets);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
