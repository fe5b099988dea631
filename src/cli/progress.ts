import { formatBytes } from '../config/units.js';

/** Where a command writes: the process edge passes stdout/stderr in, so commands never touch `process`. */
export interface CommandIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  /** Whether `err` is a terminal: progress bars redraw in place there, and are plain lines elsewhere. */
  readonly isInteractive: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => number;
}


const WIDTH = 24;

/** One image's progress line: redrawn in place on a terminal at most every 100 ms, printed once when done elsewhere. */
export function progressLine(io: CommandIo, label: string) {
  let lastDraw = 0;
  const draw = (done: number, total: number) => {
    const fraction = total === 0 ? 1 : Math.min(1, done / total);
    const filled = Math.round(fraction * WIDTH);
    return `${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)} ${String(Math.round(fraction * 100)).padStart(3)}% ${formatBytes(done)} / ${formatBytes(total)}`;
  };
  return {
    update(done: number, total: number): void {
      if (!io.isInteractive) return;
      const now = io.now();
      if (now - lastDraw < 100 && done < total) return;
      lastDraw = now;
      io.err.write(`\r\x1b[2K${label} ${draw(done, total)}`);
    },
    finish(message: string): void {
      io.err.write(`${io.isInteractive ? '\r\x1b[2K' : ''}${label} ${message}\n`);
    },
  };
}
