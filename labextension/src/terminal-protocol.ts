/** The debug terminal's wire protocol: terminado's websocket messages, the ones Jupyter's own
 * terminals speak. Each message is a JSON array whose first item names it:
 * - to the shell: `["stdin", text]` (keys typed), `["set_size", rows, cols]` (the view's size);
 * - from the shell: `["setup", {}]` (once, when it is ready), `["stdout", text]` (its output, text
 *   already decoded by the server), `["disconnect", code]` (the shell ended; the socket closes next).
 * Pure: no DOM, no socket. */

export type ToShell = ['stdin', string] | ['set_size', number, number];

export type FromShell = ['setup', Record<string, unknown>] | ['stdout', string] | ['disconnect', number];

/** The text frame for a message to the shell. */
export function encodeToShell(message: ToShell): string {
  return JSON.stringify(message);
}

/** A frame from the shell as a message, or null for anything else (a binary frame, JSON that is not
 * one of terminado's messages): the terminal ignores what it does not know rather than failing. */
export function decodeFromShell(frame: unknown): FromShell | null {
  if (typeof frame !== 'string') {
    return null;
  }
  let message: unknown;
  try {
    message = JSON.parse(frame);
  } catch {
    return null;
  }
  if (!Array.isArray(message)) {
    return null;
  }
  const [kind, value] = message;
  switch (kind) {
    case 'stdout':
      return typeof value === 'string' ? ['stdout', value] : null;
    case 'disconnect':
      return ['disconnect', typeof value === 'number' ? value : 1];
    case 'setup':
      return ['setup', value && typeof value === 'object' ? (value as Record<string, unknown>) : {}];
    default:
      return null;
  }
}
