import { z } from 'zod';

/**
 * A panel's regression check, the `openbellCheck` key of a dashboard panel (grafana/CHECKS.md):
 * how to reduce each series of the panel's query over a run, and the bounds the reduced value
 * must respect, absolutely and against a baseline run.
 */
export const panelCheckSchema = z
  .strictObject({
    /** How each series is reduced to one number over the run's window. */
    reduce: z.enum(['max', 'last', 'mean', 'min']),
    /** Inclusive upper bound of the reduced value. */
    max: z.number().finite().optional(),
    /** Inclusive lower bound of the reduced value. */
    min: z.number().finite().optional(),
    /** Relative slack against a baseline run (0.5: 50 % worse than the baseline fails). */
    tolerance: z.number().finite().nonnegative().optional(),
    /** `refId` of the panel target the check evaluates. @default the panel's first target */
    target: z.string().min(1).optional(),
    /** Verdict when the query returns no sample. @default `fail` with `min`, else `pass` */
    noData: z.enum(['pass', 'fail']).optional(),
  })
  .refine((check) => check.max !== undefined || check.min !== undefined, {
    message: 'a check needs max or min (they also say which direction is worse)',
  })
  .refine((check) => check.max === undefined || check.min === undefined || check.min <= check.max, {
    message: 'min must not exceed max',
  });

/** A validated `openbellCheck`. */
export type PanelCheck = z.infer<typeof panelCheckSchema>;
