// jsdom lacks DragEvent, which @lumino/dragdrop references when loaded
if (typeof (globalThis as any).DragEvent === 'undefined') {
  (globalThis as any).DragEvent = class DragEvent extends MouseEvent {};
}
