"""Progress bars for training rounds (a Keras callback driving tqdm)."""
from __future__ import annotations


def epoch_bar_factory(enabled: bool = True):
    """A factory ``(round_name, max_epochs) -> callback`` that shows one bar per round."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    class EpochBar(tf.keras.callbacks.Callback):
        def __init__(self, name: str, epochs: int):
            super().__init__()
            self.bar = tqdm(total=epochs, desc=f"train {name}", unit="epoch", leave=True,
                            disable=not enabled)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}",
                                 val_loss=f"{logs.get('val_loss', float('nan')):.4f}",
                                 val_acc=f"{logs.get('val_accuracy', float('nan')):.4f}")
            self.bar.update(1)

        def close(self):
            self.bar.close()

    return EpochBar
