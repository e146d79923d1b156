/** Periodic refreshes of the panels, on JupyterLab's own `Poll`: one rule for all of them. */
import { Message, MessageLoop } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import type { Widget } from '@lumino/widgets';

export interface IWidgetPollOptions {
  /** What the poll is for, in messages and the debugger (`pai-hub:<name>`). */
  name: string;
  /** Milliseconds between refreshes while they succeed. */
  interval: number;
  /** Begin at once (default); `false` waits for `start()` or `refresh()`. */
  auto?: boolean;
}

/** The phases in which a poll is not running: showing the widget must not wake it up. */
const IDLE_PHASES = new Set(['constructed', 'stopped', 'disposed']);

/**
 * A `Poll` that calls `refresh` every `interval` ms for `widget`:
 * - it stands by while the widget is not visible (a collapsed sidebar, a tab behind another) and,
 *   like every JupyterLab poll (`standby: 'when-hidden'`), while the browser tab is hidden;
 * - a rejected `refresh` backs the poll off (up to 30 s), a later success brings it back;
 * - the widget coming into view refreshes it at once (no stale view for up to `interval`);
 * - it is disposed with the widget.
 * `refresh` must reject when it failed: that is what backs the poll off.
 */
export function widgetPoll(widget: Widget, refresh: () => Promise<unknown>, options: IWidgetPollOptions): Poll {
  const { name, interval, auto = true } = options;
  const poll = new Poll({
    name: `pai-hub:${name}`,
    auto,
    factory: async () => {
      await refresh();
    },
    // after failures in a row the wait grows (by up to 3x a time) to at most Lumino's 30 s
    frequency: { interval, backoff: true, max: 30_000 },
    standby: () => (widget.isVisible ? 'when-hidden' : true)
  });
  MessageLoop.installMessageHook(widget, (_handler, msg: Message) => {
    const comesIntoView = msg.type === 'after-show' || msg.type === 'after-attach';
    if (comesIntoView && !IDLE_PHASES.has(poll.state.phase)) {
      void poll.refresh();
    }
    return true;
  });
  widget.disposed.connect(() => poll.dispose());
  return poll;
}

/** Runs `load`, whose failure is already shown to the user, for a caller that only wants it done
 * (a button, another panel); the poll, which needs the rejection, calls `load` itself. */
export async function quietly(load: () => Promise<unknown>): Promise<void> {
  try {
    await load();
  } catch {
    /* shown by `load` */
  }
}
