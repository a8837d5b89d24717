// The TypeScript declarations: test/types-check.ts (the documented uses, and
// misuses marked @ts-expect-error) compiles with the package's .d.ts files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the type declarations check', () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(out, '');
});
