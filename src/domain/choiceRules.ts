/**
 * The rules by which the intake refuses a well-formed image or choice: checks against the configuration and the
 * catalogue (which the request schema cannot state as a bound or a pattern) and the cloud-init guards. A 400 names
 * the rule in its issue's `rule`, so that a client can tell them apart without parsing the reason; the OpenAPI
 * document states each one where it describes the field. Names are stable: clients may match on them.
 */
export const choiceRules = {
  'image-unknown': 'no image of that name in the catalogue (GET /api/images)',
  'image-template-missing': "the image is configured, but its template is not in the pool (an operator's fix)",
  'image-not-offered': "the image is reserved to other organisations than the request's client",
  'image-retired': 'the image is retired: no new request may name it (requests already running keep their VM)',
  'below-image-minimum': "cores, memory_mib or disk_gib is below the image's minimum",
  'network-not-allowed': 'the bridge, or the VLAN on it, is not on the allowed list (PVE_NETWORKS)',
  'network-not-offered': "the network is reserved to other organisations than the request's client (PVE_NETWORKS, =org|org)",
  'choice-limit': 'above a configured limit: REQUEST_MAX_DISK_GIB, CLOUD_INIT_MAX_PACKAGES, _RUNCMD, _WRITE_FILES, _BYTES',
  'pveflow-key': "a cloud-config key that carries pveflow's own user-data (users, chpasswd, hostname, ...)",
  'cloud-config-key': 'a cloud-config key pveflow does not pass on to cloud-init (swap, mounts, bootcmd, ...)',
  'cloud-config-value': "a value not in the shape cloud-init's schema gives its key",
  'protected-path': "a write_files path under pveflow's (logins, OpenSSH, guest agent, VPN enrolment, cloud-init, boot chain)",
  'path-not-allowed': 'a write_files path off the allowlist of places a request may write to',
  'path-not-normalised': 'a write_files path with a . or .. segment, or //',
} as const;

export type ChoiceRule = keyof typeof choiceRules;

/** A refusal of the intake: the field at fault (the wire's name), why, and the rule. */
export interface ChoiceRefusal {
  field: string;
  reason: string;
  rule: ChoiceRule;
}
