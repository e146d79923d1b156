/** One main-area tab per thing (a job, an experiment, a task's terminal): opening it again shows the
 * tab already there instead of a second one. */
import type { ILabShell } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import type { LabIcon } from '@jupyterlab/ui-components';
import type { Widget } from '@lumino/widgets';

export interface IMainAreaTabsOptions<T extends Widget> {
  icon: LabIcon;
  /** A new tab is in the shell: e.g. start loading (it is shown by then, so its polls run). */
  opened?: (content: T) => void;
  /** A tab that is already open was asked for again: e.g. load it now. */
  reopened?: (content: T) => void;
}

export class MainAreaTabs<T extends Widget> {
  private tabs = new Map<string, MainAreaWidget<T>>();

  constructor(
    private shell: ILabShell,
    private options: IMainAreaTabsOptions<T>
  ) {}

  /** Show the tab for `key`, made by `create` if there is none (or it was closed). */
  open(key: string, create: () => T): T {
    let tab = this.tabs.get(key);
    const isNew = !tab || tab.isDisposed;
    if (!tab || tab.isDisposed) {
      tab = this.wrap(create());
      this.tabs.set(key, tab);
      this.shell.add(tab, 'main');
    }
    this.shell.activateById(tab.id);
    (isNew ? this.options.opened : this.options.reopened)?.(tab.content);
    return tab.content;
  }

  /** The contents of the tabs still open. */
  get contents(): T[] {
    return [...this.tabs.values()].filter(t => !t.isDisposed).map(t => t.content);
  }

  private wrap(content: T): MainAreaWidget<T> {
    const tab = new MainAreaWidget({ content });
    tab.id = content.id;
    tab.title.icon = this.options.icon;
    const copyTitle = () => {
      tab.title.label = content.title.label;
      tab.title.caption = content.title.caption;
    };
    copyTitle();
    content.title.changed.connect(copyTitle); // e.g. an experiment's name, known once it loaded
    return tab;
  }
}
