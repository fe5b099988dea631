/**
 * Why a client that must run as root cannot run here, or undefined when it can. A skip must cite
 * an issue (STYLE.md §7); these clients came in with issue 16.
 */
export function rootOnlySkipReason(client: string): string | undefined {
  const uid = process.getuid?.();
  if (uid === 0) return undefined;
  return `issue 16: ${client} is driven as root (its storage, mounts and cgroups); this run is uid ${uid ?? 'unknown'}`;
}
