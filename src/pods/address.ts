// Pod addresses as keys: every spelling of one host:port is one pod, in the registry, the in-flight
// table and the configuration's uniqueness check alike.

/**
 * The key an address is known by, so that every spelling of one pod is one pod: host names compare
 * case-insensitively, ports as numbers ("08000" is 8000), IPv6 literals in their canonical form
 * ("[0:0:0:0:0:0:0:1]" is "[::1]").
 */
export function normalizeAddress(address: string): string {
  const colon = address.lastIndexOf(":");
  // No port: a host name, or an IPv6 literal whose last colon is inside its brackets.
  if (colon < 0 || address.endsWith("]")) return address.startsWith("[") ? canonicalIpv6(address.toLowerCase()) : address.toLowerCase();
  const host = address.slice(0, colon).toLowerCase();
  const port = address.slice(colon + 1);
  return `${host.startsWith("[") ? canonicalIpv6(host) : host}:${/^\d+$/.test(port) ? String(Number(port)) : port}`;
}

function canonicalIpv6(bracketed: string): string {
  try {
    return new URL(`http://${bracketed}/`).hostname;
  } catch {
    return bracketed;
  }
}
