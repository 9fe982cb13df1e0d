/** A valid body for POST /api/device_requests: tests change one thing at a time from here. */
export function validRequestBody(overrides: Record<string, unknown> = {}) {
  const now = Date.now();
  return {
    name: 'kali',
    client: 'Acme Corp',
    requester: 'rita@acme.example',
    consultants: ['alice@consultancy.example', 'bob@consultancy.example'],
    period: { start: new Date(now - 60_000).toISOString(), end: new Date(now + 7 * 24 * 3600_000).toISOString() },
    cores: 4,
    memory_mib: 4096,
    ssh_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpveGZsb3ctdGVzdC1rZXktbm90LXJlYWwtMDAwMDA rita@laptop'],
    ...overrides,
  };
}
