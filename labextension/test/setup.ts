// jsdom lacks DragEvent, which @lumino/dragdrop references when loaded
if (typeof (globalThis as any).DragEvent === 'undefined') {
  (globalThis as any).DragEvent = class DragEvent extends MouseEvent {};
}
// jsdom has no canvas; xterm.js asks for one when loaded and does without (its DOM renderer) when
// there is none: say "none" rather than have jsdom print "Not implemented" on every run
HTMLCanvasElement.prototype.getContext = (() => null) as typeof HTMLCanvasElement.prototype.getContext;
