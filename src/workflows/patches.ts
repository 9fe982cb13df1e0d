/**
 * The `patched()` ids of the request workflow's changes since 1.0, one place for each (docs/versioning.md): an
 * execution started before a change replays on its old path; the id is what `deprecatePatch()` later names.
 */
export const PATCHES = {
  /** The timeline keeps its first entry and the latest within a bound; what fell between is summarised in one entry. */
  boundedTimeline: 'bounded-timeline',
} as const;
