/** The `code` of a failed system call ("ENOENT", "ESRCH", ...), or undefined for other errors. */
export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}
