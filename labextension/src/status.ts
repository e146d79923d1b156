/** The status bar item: my running jobs and the GPUs they hold. */
import { Widget } from '@lumino/widgets';

import type { IPaiApi } from './api';
import { usage, usageText } from './model';

export class PaiStatus extends Widget {
  private timer = 0;

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
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), periodMs);
  }

  async refresh(): Promise<void> {
    try {
      const jobs = await this.api.get('jobs?state=RUNNING,WAITING');
      this.node.textContent = usageText(usage(jobs));
      this.node.title = 'PAI: my running jobs and the GPUs they hold (click for the jobs panel)';
    } catch (e: any) {
      this.node.textContent = 'PAI: unavailable';
      this.node.title = e.message;
    }
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }
}
