/** An experiment's NNI web UI in a Lab tab (kept apart from experiments.ts: it is the one view that
 * needs JupyterLab's IFrame widget). */
import { IFrame } from '@jupyterlab/ui-components';

import type { Experiment } from './experiment-model';

/** NNI's own web UI, served through the Jupyter server (`/pai/nni/<id>/`, as the server's user). */
export class NniWebUi extends IFrame {
  constructor(url: string, experiment: Pick<Experiment, 'id' | 'name'>) {
    super({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups', 'allow-downloads'] });
    this.id = `pai-nni-${experiment.id}`;
    this.addClass('pai-NniUi');
    this.title.label = `NNI: ${experiment.name}`;
    this.title.caption = `NNI web UI of experiment ${experiment.id}`;
    this.title.closable = true;
    this.url = url;
  }
}
