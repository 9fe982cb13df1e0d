import type { PveClient, VmConfig } from '../../clients/pve';

/** How long a template's config is reused: templates change by hand, rarely; a change is seen within this. */
const FRESH_FOR_MS = 30_000;

/**
 * The configs of templates, read once and reused for a short while by every build of this worker: placement and the
 * clone both need to know where a template's volumes live, and a class of 30 identical VMs need not ask 60 times.
 */
export class TemplateConfigs {
  private readonly cache = new Map<string, { at: number; config: Promise<VmConfig> }>();

  constructor(
    private readonly pve: PveClient,
    private readonly freshForMs = FRESH_FOR_MS,
  ) {}

  get(node: string, vmid: number): Promise<VmConfig> {
    const key = `${node}/${vmid}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.freshForMs) return hit.config;
    const config = this.pve.vmConfig(node, vmid);
    this.cache.set(key, { at: Date.now(), config });
    // A failed read is not remembered: the next build asks Proxmox again.
    config.catch(() => {
      if (this.cache.get(key)?.config === config) this.cache.delete(key);
    });
    return config;
  }
}
