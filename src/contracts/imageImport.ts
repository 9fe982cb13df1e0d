import { defineQuery, defineSignal } from '@temporalio/workflow';

/** The checksum algorithms Proxmox's download-url verifies (its `checksum-algorithm` enum). */
export const checksumAlgorithms = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const;
export type ChecksumAlgorithm = (typeof checksumAlgorithms)[number];

/** Where the image comes from: a URL Proxmox downloads (and verifies), or a volume already on a storage. */
export type ImageSource = { url: string; checksum: string; checksumAlgorithm: ChecksumAlgorithm; extension: DiskImageExtension } | { volume: string };

/** The disk image formats an `import` storage takes (a file of another name is refused by Proxmox). */
export const diskImageExtensions = ['qcow2', 'raw', 'img', 'vmdk'] as const;
export type DiskImageExtension = (typeof diskImageExtensions)[number];

/** One image import, as the API started it (the wire's body, checked and in the domain's words). */
export interface ImageImportInput {
  name: string;
  os: string;
  description?: string;
  minimum: { cores?: number; memoryMiB?: number; diskGiB?: number };
  /** Only these organisations may use it; absent: every one. */
  orgs?: string[];
  source: ImageSource;
  /**
   * The node that holds the template; absent: every online node the node selector allows when the disk storage is
   * local to each node (a clone of a local template is made on its own node only), or the first when it is shared.
   */
  node?: string;
  /** Where the file is downloaded to (a storage with `import` content). */
  downloadStorage: string;
  /** Where the template's disk and cloud-init drive are made (a storage with `images` content). */
  diskStorage: string;
  /** Who asked (the API key's id), for the catalogue's record. */
  requestedBy: string;
}

export type ImportStage = 'queued' | 'planning' | 'downloading' | 'reserving-vmid' | 'creating-vm' | 'templating' | 'cataloguing' | 'done';
export type ImportState = 'running' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

/** An import as its workflow keeps it: where it is, how many bytes, what it made and what it could not undo. */
export interface ImportTask {
  name: string;
  state: ImportState;
  stage: ImportStage;
  /** Bytes downloaded so far, and the file's size once Proxmox knows it. */
  bytes?: number;
  totalBytes?: number;
  node?: string;
  volume?: string;
  templateVmid?: number;
  /** The templates made so far, one per node when the disk storage is local to each node. */
  templates?: ImageTemplate[];
  log: Array<{ at: string; stage: ImportStage; message: string }>;
  /** What failed to be removed after a failure or cancel: an operator removes it by hand. */
  leftovers: string[];
  error?: string;
  startedAt: string;
  endedAt?: string;
}

/** One template of an image: where it is and its VMID (and its disk's size, which a request may not go below). */
export interface ImageTemplate {
  node: string;
  vmid: number;
  diskGiB?: number;
}

export interface ImageImportResult {
  name: string;
  /** The first template (the only one on a shared storage). */
  templateVmid: number;
  node: string;
  /** Every template made, one per node when the disk storage is local to each node. */
  templates: ImageTemplate[];
}

/** The name of an image's template VM in Proxmox (a VM name is a DNS label). */
export const imageVmName = (name: string): string => `image-${name}`.replace(/[^a-zA-Z0-9.-]/g, '-').slice(0, 63);

export const importStatusQuery = defineQuery<ImportTask>('importStatus');
/** From the download activity to its workflow: bytes so far (throttled), so the log shows the download moving. */
export const importProgressSignal = defineSignal<[{ bytes: number; totalBytes?: number }]>('importProgress');

/**
 * The Proxmox tag an import's VM carries from its creation until it is a template: the cluster sync reads tags from
 * /cluster/resources and counts no tagged VM as an orphan while the import makes it. Removed once the VM is a template,
 * because Proxmox copies tags to a clone and a clone left in the pool must still count.
 */
export const IMAGE_IMPORT_TAG = 'pveflow-image-import';

/** Whether a Proxmox tag list (`;`-separated, as /cluster/resources and the config give it) holds `tag`. */
export const hasTag = (tags: string | undefined, tag: string): boolean => (tags ?? '').split(/[;, ]+/).includes(tag);

/** The first line of an imported template's description: checked before adopting or destroying the VM. */
export const imageMarker = (name: string): string => `pveflow:image=${name}`;

/**
 * The file an import downloads: unique per import run, so a file of that name is always this import's own. An `import`
 * storage takes .qcow2, .raw, .vmdk (and .ova) only: a cloud image's `.img` is qcow2 (Ubuntu's, Debian's `.img` are).
 */
export const importFileName = (name: string, runId: string, extension: DiskImageExtension): string => `pveflow-${name}-${runId.slice(0, 8)}.${extension === 'img' ? 'qcow2' : extension}`;
