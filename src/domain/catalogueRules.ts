// No zod here: the catalogue workflow imports these rules, and the SDK evaluates every module of its bundle per workflow.
import type { ConfiguredImage } from './imageCatalogue';

/**
 * The image catalogue as it is kept (in the imageCatalogue workflow): the operators' images, each in the
 * configuration's words, with where it came from and whether it is retired. Plain JSON, carried over by
 * continue-as-new; the rules below decide every change and are tested without Temporal.
 */
export interface CatalogueEntry extends ConfiguredImage {
  /** Retired: no new request may name it; requests already holding a VM of it keep that VM. */
  retired?: boolean;
  /** PVEFLOW_IMAGES (seeded), an import workflow, or the API. */
  origin: 'seed' | 'import';
  /** The import that made its template (its workflow id), for an imported image. */
  importedBy?: string;
  /**
   * An imported image's templates as its import made them, one per node when the disk storage is local to each node
   * (`template` is the first). Absent on a seeded entry and on one kept before imports recorded it: `template` alone.
   */
  templates?: Array<{ node: string; vmid: number; diskGiB?: number }>;
  addedAt: string;
}

export interface CatalogueState {
  entries: CatalogueEntry[];
  /**
   * Curated: only the entries are images (PVEFLOW_IMAGES was set when the catalogue was seeded). Not curated: every
   * template of the pool is an image too, as before the catalogue existed, and the entries name and refine theirs.
   */
  curated: boolean;
  /** Names deleted through the API: a restart with PVEFLOW_IMAGES unchanged does not bring them back. */
  deletedSeeds: string[];
}

/** The most images a catalogue holds (the configuration's bound): its state stays small enough for one payload. */
export const MAX_CATALOGUE_IMAGES = 500;

export const emptyCatalogue: CatalogueState = { entries: [], curated: false, deletedSeeds: [] };

/** Why a change was refused, in the operator's words; `conflict` for the ones the API answers 409. */
export interface CatalogueRefusal {
  field: string;
  reason: string;
  conflict?: boolean;
  notFound?: boolean;
}

export type CatalogueChange = { ok: true; state: CatalogueState; entry?: CatalogueEntry } | { ok: false; refusal: CatalogueRefusal };

/**
 * PVEFLOW_IMAGES applied to the catalogue: its images not yet there (by name) are added, those already there are left as
 * the API last changed them, and a name deleted through the API stays deleted. Set at all, it makes the catalogue
 * curated. Undefined (the variable unset) changes nothing.
 */
export function seedCatalogue(state: CatalogueState, seed: ConfiguredImage[] | undefined, at: string): CatalogueState {
  if (!seed) return state;
  const known = new Set([...state.entries.map((e) => e.name), ...state.deletedSeeds]);
  const added = seed.filter((s) => !known.has(s.name)).map((s): CatalogueEntry => ({ ...s, origin: 'seed', addedAt: at }));
  return { ...state, curated: true, entries: [...state.entries, ...added].slice(0, MAX_CATALOGUE_IMAGES) };
}

/** A new image (an import's template): refused when the name is taken or the catalogue is full. */
export function addImage(state: CatalogueState, entry: CatalogueEntry): CatalogueChange {
  if (state.entries.some((e) => e.name === entry.name)) {
    return { ok: false, refusal: { field: 'name', reason: `an image named ${entry.name} exists already; choose another name or delete that image first`, conflict: true } };
  }
  if (state.entries.length >= MAX_CATALOGUE_IMAGES) {
    return { ok: false, refusal: { field: 'name', reason: `the catalogue holds ${MAX_CATALOGUE_IMAGES} images, its most; delete retired ones first`, conflict: true } };
  }
  return { ok: true, state: { ...state, entries: [...state.entries, entry], deletedSeeds: state.deletedSeeds.filter((n) => n !== entry.name) }, entry };
}

/** What an operator may change of an image: its minimums, orgs (null: every org) and description. */
export interface ImagePatch {
  min_cores?: number;
  min_memory_mib?: number;
  min_disk_gib?: number;
  orgs?: string[] | null;
  description?: string;
}

export function updateImage(state: CatalogueState, name: string, patch: ImagePatch): CatalogueChange {
  const found = entryOf(state, name);
  if (!found.ok) return found;
  const { orgs, ...rest } = patch;
  const next: CatalogueEntry = { ...found.entry, ...rest };
  if (orgs === null) delete next.orgs;
  else if (orgs !== undefined) next.orgs = orgs;
  return replace(state, next);
}

/** Retired: offered to no new request. Retiring twice is no change. */
export function retireImage(state: CatalogueState, name: string): CatalogueChange {
  const found = entryOf(state, name);
  if (!found.ok) return found;
  return replace(state, { ...found.entry, retired: true });
}

/**
 * Deleted from the catalogue, refused while a running request holds a VM of it (`usedBy`, its serials, as the API
 * found them in Temporal's visibility): a linked clone needs its template for as long as it lives.
 */
export function deleteImage(state: CatalogueState, name: string, usedBy: string[]): CatalogueChange {
  const found = entryOf(state, name);
  if (!found.ok) return found;
  if (usedBy.length > 0) {
    const shown = usedBy.slice(0, 10).join(', ') + (usedBy.length > 10 ? ` and ${usedBy.length - 10} more` : '');
    return { ok: false, refusal: { field: 'name', reason: `image ${name} is used by request(s) ${shown}: retire it now (no new requests) and delete it once they are completed`, conflict: true } };
  }
  const entries = state.entries.filter((e) => e.name !== name);
  const deletedSeeds = found.entry.origin === 'seed' ? [...state.deletedSeeds.filter((n) => n !== name), name].slice(-MAX_CATALOGUE_IMAGES) : state.deletedSeeds;
  return { ok: true, state: { ...state, entries, deletedSeeds }, entry: found.entry };
}

function entryOf(state: CatalogueState, name: string): { ok: true; entry: CatalogueEntry } | { ok: false; refusal: CatalogueRefusal } {
  const entry = state.entries.find((e) => e.name === name);
  return entry ? { ok: true, entry } : { ok: false, refusal: { field: 'name', reason: `no image ${name} in the catalogue`, notFound: true } };
}

function replace(state: CatalogueState, entry: CatalogueEntry): CatalogueChange {
  return { ok: true, state: { ...state, entries: state.entries.map((e) => (e.name === entry.name ? entry : e)) }, entry };
}
