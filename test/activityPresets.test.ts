import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

/**
 * Every activity a workflow calls is proxied with a named preset of src/workflows/activityOptions.ts (issue 27: four
 * workflows spread one preset and changed a field of it inline, so that no one place said how a call retries).
 */
test('workflows proxy their activities with named presets only', () => {
  const dir = join(__dirname, '..', 'src', 'workflows');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const inline = files.flatMap((f) =>
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .map((line, i) => ({ where: `${f}:${i + 1}`, line }))
      .filter(({ line }) => /proxy(Local)?Activities<[^>]*(>[^>]*)?>\(\s*\{/.test(line)),
  );
  assert.deepEqual(
    inline.map((l) => l.where),
    [],
    'name the options in activityOptions.ts',
  );
  assert.ok(files.length > 5, `only ${files.length} workflow files found`);
});
