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
  /** The node that holds the template; absent: the first online node the node selector allows. */
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
  log: Array<{ at: string; stage: ImportStage; message: string }>;
  /** What failed to be removed after a failure or cancel: an operator removes it by hand. */
  leftovers: string[];
  error?: string;
  startedAt: string;
  endedAt?: string;
}

export interface ImageImportResult {
  name: string;
  templateVmid: number;
  node: string;
}

export const importStatusQuery = defineQuery<ImportTask>('importStatus');
/** From the download activity to its workflow: bytes so far (throttled), so the log shows the download moving. */
export const importProgressSignal = defineSignal<[{ bytes: number; totalBytes?: number }]>('importProgress');

/** The first line of an imported template's description: checked before adopting or destroying the VM. */
export const imageMarker = (name: string): string => `pveflow:image=${name}`;

/**
 * The file an import downloads: unique per import run, so a file of that name is always this import's own. An `import`
 * storage takes .qcow2, .raw, .vmdk (and .ova) only: a cloud image's `.img` is qcow2 (Ubuntu's, Debian's `.img` are).
 */
export const importFileName = (name: string, runId: string, extension: DiskImageExtension): string => `pveflow-${name}-${runId.slice(0, 8)}.${extension === 'img' ? 'qcow2' : extension}`;
