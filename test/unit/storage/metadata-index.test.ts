import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';
import { describeMetadataIndex } from '../../contract/metadata-index.contract.js';

describeMetadataIndex('in memory', async (clock) => createMetadataIndex({ path: ':memory:' }, { now: () => clock.now }));
describeMetadataIndex('on disk', async (clock) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-index-'));
  return createMetadataIndex({ path: path.join(dir, 'index.db') }, { now: () => clock.now });
});
