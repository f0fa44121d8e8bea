import { describe, expect, it } from 'vitest';
import { waitUntil } from './wait.ts';

describe('waitUntil', () => {
  it('resolves once the check holds, checking again every interval', async () => {
    let calls = 0;
    const at = await waitUntil('the third call', () => ++calls === 3, 30_000, 1);
    expect(calls).toBe(3);
    expect(at).toBeLessThanOrEqual(performance.now());
  });

  it('takes an async check', async () => {
    let calls = 0;
    await waitUntil('an async yes', async () => ++calls > 1, 30_000, 1);
    expect(calls).toBe(2);
  });

  it('rejects after the timeout naming what it waited for', async () => {
    await expect(waitUntil('the moon to turn blue', () => false, 20, 5)).rejects.toThrow(
      'timed out after 20 ms waiting for the moon to turn blue',
    );
  });

  it('rejects at once with the error of a check that throws', async () => {
    let calls = 0;
    const check = (): boolean => {
      calls++;
      throw new Error('daemon gone');
    };
    await expect(waitUntil('anything', check, 30_000, 1)).rejects.toThrow('daemon gone');
    expect(calls).toBe(1);
  });
});
