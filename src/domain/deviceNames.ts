// No zod here: the workflow bundle imports this, and the SDK evaluates every module of that bundle once per workflow.

/** Every request's device group starts with it: the groups no policy but the request's own may open. */
export const DEVICE_GROUP_PREFIX = 'device-';

/** The name of the one-way policy of a request (`deviceNames(...).policy`), whatever its serial. */
export const REQUEST_POLICY_PATTERN = /^pveflow-.+-consultants-to-device$/;

/** The names pveflow gives what it creates for a request: findable again after any crash. */
export function deviceNames(serial: string, name: string) {
  const slug = serial.toLowerCase();
  return {
    /** VM name in Proxmox, cloud-init hostname and NetBird peer name. */
    hostname: `${name}-${slug}`,
    snippetFile: `pveflow-${slug}-user-data.yaml`,
    deviceGroup: `${DEVICE_GROUP_PREFIX}${serial}`,
    consultantsGroup: `consultants-${serial}`,
    policy: `pveflow-${serial}-consultants-to-device`,
    setupKey: `pveflow-${serial}`,
    /** First line of the VM description: the ownership marker checked before adopting or destroying a VM. */
    marker: `pveflow:serial=${serial}`,
    tag: slug,
  };
}
