/**
 * The `patched()` ids of the workflows' changes since 1.0, one place for each (docs/versioning.md): an
 * execution started before a change replays on its old path; the id is what `deprecatePatch()` later names.
 */
export const PATCHES = {
  /** The timeline keeps its first entry and the latest within a bound; what fell between is summarised in one entry. */
  boundedTimeline: 'bounded-timeline',
  /** A rebuild queued before the period's start waits for it, as the first build does; the rebuild answers with when. */
  rebuildWaitsForPeriod: 'rebuild-waits-for-period',
  /** After a snapshot revert the record and the quota memo follow the size Proxmox reports; a snapshot keeps its size. */
  revertFollowsConfig: 'revert-follows-config',
  /** The cleanup gives the guest the policy's shutdown timeout (REQUEST_SHUTDOWN_TIMEOUT_S), not a fixed 120 s. */
  cleanupShutdownTimeout: 'cleanup-shutdown-timeout',
  /** A reveal keeps the logins for the same consultant to fetch again for a short window; the lease shreds them after it. */
  revealRefetchWindow: 'reveal-refetch-window',
  /** A size the sync sees that pveflow did not set (a change made in Proxmox directly): the record and the quota memo follow it. */
  syncFollowsConfig: 'sync-follows-config',
  /**
   * A build upserts its search attributes only when what they show changed (the Configuring phase changes none of
   * them): one billable Action less per build. Asked in the build's first workflow task, whose local activities' markers
   * the patch's marker joins, so the asking costs no Action of its own.
   */
  buildPublishesChanges: 'build-publishes-changes',
  /** A build starts its VM and makes it an HA resource in one activity (startVmUnderHa), not an activity and a local one. */
  buildStartsUnderHa: 'build-starts-under-ha',
  /** A build grows the boot disk in its configureVm activity (`diskGiB`), not in a growDisk activity of its own. */
  buildConfiguresDisk: 'build-configures-disk',
  /**
   * The request shreds its credential key in a local activity, not an activity: at the cleanup its marker shares the
   * task's Action with the cleanup's own patch marker (one billable Action fewer per request).
   */
  shredsInWorkflowTask: 'shreds-in-workflow-task',
  /**
   * A failed or cancelled request whose period ends is cleaned up then, as a fulfilled one is, instead of waiting for
   * a rebuild or a completion for ever (and holding its org's quota).
   */
  failedRequestEndsWithPeriod: 'failed-request-ends-with-period',
  /** A build waits for its NetBird peer and grants the consultants' access in one activity (joinVpn), not two. */
  buildJoinsVpnInOneStep: 'build-joins-vpn-in-one-step',
  /**
   * The clone-slots coordinator grants an ask on the clone slot keys of the place it chose for it (`offers[].keys`, an
   * image with a template per node), not on the keys of every place. Asked only for an ask that carries such keys.
   */
  cloneSlotsPerPlaceKeys: 'clone-slots-per-place-keys',
} as const;
