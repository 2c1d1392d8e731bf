import type { EventBatch } from './batch.ts';
import type { ApplyResult, BoardStore } from './board-store.ts';

/** Options of {@link createGroupApplier}. */
export interface GroupApplierOptions {
  store: Pick<BoardStore, 'applyBatches'>;
  /** A group is applied as soon as it holds this many events, and never holds more (but one batch). @default 16000 */
  groupMaxEvents?: number;
  /**
   * Groups applied at once. Redis runs one script at a time, so a second group only goes out
   * full, to be prepared while the first one runs; a partial group waits for the group in
   * flight, gathering what arrives meanwhile. @default 2
   */
  groupsInFlight?: number;
  /** Called once per applied group, after its batches are settled as applied. */
  onApplied?(result: ApplyResult, batches: readonly EventBatch[]): void;
  /**
   * Called when `onApplied` throws: the group stays applied, and the error goes here.
   * @default rethrown on its own (an uncaught exception)
   */
  onAppliedError?(error: unknown): void;
}

/** Collects the batches handlers hand in during one turn of the event loop and applies them together. */
export interface GroupApplier {
  /** Resolves once `batch` is applied (with its group); rejects when its group failed. */
  apply(batch: EventBatch): Promise<void>;
}

interface Pending {
  batch: EventBatch;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Group commit for analyzers: the batches that arrive together (a consumer delivers up to its
 * concurrency at once) go to Redis in one script call, so a symbol hot across many batches is
 * read and written once per group. What waits is bounded by the consumer's concurrency.
 */
export function createGroupApplier(options: GroupApplierOptions): GroupApplier {
  const groupMaxEvents = options.groupMaxEvents ?? 16_000;
  const groupsInFlight = options.groupsInFlight ?? 2;
  const pending: Pending[] = [];
  let pendingEvents = 0;
  let scheduled = false;
  let inFlight = 0;

  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0 || inFlight >= groupsInFlight) return;
    if (inFlight > 0 && pendingEvents < groupMaxEvents) return;
    // At most groupMaxEvents (or one batch) per group: what waits beyond goes in the next one.
    let taken = 0;
    let events = 0;
    while (
      taken < pending.length &&
      (taken === 0 || events + pending[taken]!.batch.events.length <= groupMaxEvents)
    ) {
      events += pending[taken]!.batch.events.length;
      taken++;
    }
    const group = pending.splice(0, taken);
    pendingEvents -= events;
    inFlight++;
    const batches = group.map((p) => p.batch);
    options.store
      .applyBatches(batches)
      .then(
        (result) => {
          for (const p of group) p.resolve();
          try {
            options.onApplied?.(result, batches);
          } catch (error) {
            if (options.onAppliedError !== undefined) options.onAppliedError(error);
            else
              queueMicrotask(() => {
                throw error;
              });
          }
        },
        (error: unknown) => {
          for (const p of group) p.reject(error);
        },
      )
      .finally(() => {
        inFlight--;
        if (pending.length > 0) schedule();
      });
  };

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };

  return {
    apply(batch) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ batch, resolve, reject });
        pendingEvents += batch.events.length;
        if (pendingEvents >= groupMaxEvents) flush();
        else schedule();
      });
    },
  };
}
