// The Playwright fixture under the real Playwright test runner (no browser:
// these specs use only `securityKey`): a failed test's report shows the key's
// events, a passing one does not, and every test's key is gone afterwards.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { start } from 'ferrokey';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

test('a failed test shows the key\'s events; keys are removed', async () => {
  // Inside the package, so that 'ferrokey/playwright' resolves to this package.
  const dir = mkdtempSync(join(ROOT, 'test', 'tmp-runner-'));
  const server = await start({ transport: 'usbip' });
  try {
    const before = (await server.keys()).map((k) => k.authenticatorId);
    writeFileSync(join(dir, 'pw.config.js'), `export default {
  testDir: '.', outputDir: ${JSON.stringify(join(dir, 'out'))}, workers: 1, reporter: 'list',
  use: { ferrokeyServerOptions: { url: ${JSON.stringify(server.url)} } },
};\n`);
    writeFileSync(join(dir, 'keys.spec.js'), `import { test, expect } from 'ferrokey/playwright';
test('passes', async ({ securityKey }) => {
  expect((await securityKey.info()).powered).toBe(true);
});
test('fails', async ({ securityKey }) => {
  await securityKey.power(false);
  await securityKey.power(true);
  expect('on purpose').toBe('passing');
});\n`);
    const run = await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/@playwright/test/cli.js'), 'test',
      '-c', join(dir, 'pw.config.js')], { cwd: ROOT, timeout: 120000, env: { ...process.env, FORCE_COLOR: '0' } })
      .then(() => ({ code: 0, stdout: '' }), (e) => ({ code: e.code, stdout: `${e.stdout}${e.stderr}` }));
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /1 passed/);
    assert.match(run.stdout, /1 failed/);
    const attachments = run.stdout.match(/attachment #\d+: ferrokey events \(authenticator \d+\)/g) ?? [];
    assert.equal(attachments.length, 1, run.stdout);
    const after = run.stdout.slice(run.stdout.indexOf(attachments[0]));
    assert.ok(after.indexOf('"event":"powerOff"') >= 0 && after.indexOf('"event":"powerOff"') < after.indexOf('"event":"powerOn"'), run.stdout);
    // both tests' keys were made on this server and are gone
    assert.equal(server.busids.size, 1);
    assert.deepEqual((await server.keys()).map((k) => k.authenticatorId), before);
    const log = server.logTail(200);
    assert.equal((log.match(/method=POST path=\/webauthn\/authenticator status=200/g) ?? []).length, 2, log);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
