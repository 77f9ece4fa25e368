"""A callback for benchmarks/startup.py: prints seconds since FUSELAB_T0 at the first training step."""

import os
import time

from pytorch_lightning.callbacks import Callback


class FirstStepProbe(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0 and trainer.current_epoch == 0:
            print(f"FIRST_STEP_AT {time.time() - float(os.environ['FUSELAB_T0']):.3f}", flush=True)
