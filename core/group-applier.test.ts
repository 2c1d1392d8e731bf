import { describe, expect, it } from 'vitest';
import type { EventBatch } from './batch.ts';
import type { ApplyResult } from './board-store.ts';
import { createGroupApplier } from './group-applier.ts';

const batch = (id: string, events: number): EventBatch => ({
  v: 1,
  id,
  receivedAtMs: 0,
  events: Array.from({ length: events }, () => ({ ev: 'T' as const, sym: 'X' })),
});

/** A store whose calls the test completes by hand, recording the batch ids of each group. */
function manualStore() {
  const groups: string[][] = [];
  const done: (() => void)[] = [];
  const failed: ((error: Error) => void)[] = [];
  const result: ApplyResult = {
    applied: 0,
    duplicates: 0,
    aggregates: 0,
    trades: 0,
    ignored: 0,
    dates: [],
    appliedEvents: 0,
    duplicateEvents: 0,
  };
  return {
    groups,
    /** Completes the oldest group still running. */
    finish: () => (failed.shift(), done.shift()!()),
    /** Fails the oldest group still running. */
    fail: () => (done.shift(), failed.shift()!(new Error('redis down'))),
    store: {
      applyBatches: (group: readonly EventBatch[]) => {
        groups.push(group.map((b) => b.id));
        return new Promise<ApplyResult>((resolve, reject) => {
          done.push(() => resolve(result));
          failed.push(reject);
        });
      },
    },
  };
}

/** A few turns of the event loop: the store's completions, then the applier's next flush. */
const turn = async () => {
  for (let n = 0; n < 3; n++) await new Promise((resolve) => setImmediate(resolve));
};

describe('group applier', () => {
  it('applies what arrives together as one group, and gathers a partial group while one runs', async () => {
    const s = manualStore();
    const applier = createGroupApplier({ store: s.store, groupMaxEvents: 1000 });
    const applied: string[] = [];
    const apply = (b: EventBatch) => void applier.apply(b).then(() => applied.push(b.id));
    apply(batch('a', 100));
    apply(batch('b', 100));
    await turn();
    expect(s.groups).toEqual([['a', 'b']]);
    // A second slot is free, but a partial group waits for the one in flight.
    apply(batch('c', 100));
    await turn();
    apply(batch('d', 100));
    await turn();
    expect(s.groups).toHaveLength(1);
    s.finish();
    await turn();
    expect(applied).toEqual(['a', 'b']);
    expect(s.groups).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    s.finish();
    await turn();
    expect(applied).toEqual(['a', 'b', 'c', 'd']);
  });

  it('sends a full group beside the one in flight, never more than two at once', async () => {
    const s = manualStore();
    const applier = createGroupApplier({ store: s.store, groupMaxEvents: 1000 });
    void applier.apply(batch('a', 100));
    await turn();
    for (const id of ['b', 'c', 'd', 'e', 'f']) void applier.apply(batch(id, 400));
    await turn();
    // b, c (800 events) and d would pass 1,000: the full group goes out at once, the rest waits.
    expect(s.groups).toEqual([['a'], ['b', 'c']]);
    s.finish();
    await turn();
    expect(s.groups).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
    s.finish();
    s.finish();
    await turn();
    expect(s.groups.at(-1)).toEqual(['f']);
  });

  it('rejects the batches of a failed group, and still sends the group that waited behind it', async () => {
    const s = manualStore();
    const applier = createGroupApplier({ store: s.store, groupMaxEvents: 1000 });
    const outcomes: string[] = [];
    const apply = (b: EventBatch) =>
      void applier.apply(b).then(
        () => outcomes.push(`${b.id} applied`),
        (error: Error) => outcomes.push(`${b.id} ${error.message}`),
      );
    apply(batch('a', 100));
    await turn();
    apply(batch('b', 100));
    await turn();
    s.fail();
    await turn();
    expect(outcomes).toEqual(['a redis down']);
    expect(s.groups).toEqual([['a'], ['b']]);
    s.finish();
    await turn();
    expect(outcomes).toEqual(['a redis down', 'b applied']);
  });

  it('settles a group as applied, and reports the error, when counting it throws', async () => {
    const s = manualStore();
    const errors: unknown[] = [];
    const applier = createGroupApplier({
      store: s.store,
      groupMaxEvents: 1000,
      onApplied: () => {
        throw new Error('counter broke');
      },
      onAppliedError: (error) => errors.push(error),
    });
    const outcomes: string[] = [];
    void applier.apply(batch('a', 100)).then(
      () => outcomes.push('a applied'),
      (error: Error) => outcomes.push(`a ${error.message}`),
    );
    await turn();
    s.finish();
    await turn();
    expect(outcomes).toEqual(['a applied']);
    expect(errors).toEqual([new Error('counter broke')]);
    // The applier goes on: the next batch makes its own group.
    void applier.apply(batch('b', 100));
    await turn();
    expect(s.groups).toEqual([['a'], ['b']]);
  });
});
