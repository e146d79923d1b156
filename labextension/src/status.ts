/** The status bar item: my running jobs and the GPUs they hold. */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import type { IPaiApi } from './api';
import { usage, usageText } from './model';
import { widgetPoll } from './polling';

export class PaiStatus extends Widget {
  /** the summary, kept fresh while the status bar is shown */
  readonly poll: Poll;

  constructor(
    private api: IPaiApi,
    private onClick: () => void,
    periodMs = 10000
  ) {
    super({ node: document.createElement('button') });
    this.addClass('pai-Status');
    this.node.setAttribute('aria-label', 'PAI jobs');
    this.node.textContent = 'PAI';
    this.node.onclick = () => this.onClick();
    this.poll = widgetPoll(this, () => this.load(), { name: 'status', interval: periodMs });
  }

  /** Recount; a failure is shown, and rethrown for the poll to back off. */
  private async load(): Promise<void> {
    try {
      const jobs = await this.api.get('jobs?state=RUNNING,WAITING');
      this.node.textContent = usageText(usage(jobs));
      this.node.title = 'PAI: my running jobs and the GPUs they hold (click for the jobs panel)';
    } catch (e: any) {
      this.node.textContent = 'PAI: unavailable';
      this.node.title = e.message;
      throw e;
    }
  }
}
