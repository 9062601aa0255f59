"""Early stopping on the held-out dev loss: the best step so far, and when to give up on improving it.

Three epochs over 115 records took the training loss from 0.88 to 0.05: memorized, with nothing to
say when. The dev loss (records the training never sees) is measured every few steps; the adapter of
the step with the lowest one is kept, and training stops once `patience` measurements in a row have
not beaten it. The tracker's state goes into each checkpoint, so a resumed run stops where an
uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def best_folder(step: int) -> str:
    """Where the adapter of the best step is kept (beside the resumable checkpoint, which may be later)."""
    return f"checkpoints/best-step-{step:06d}"


@dataclass
class DevTracker:
    patience: int | None  # None: never stop early (the best step is still kept)
    losses: list[list[float]] = field(default_factory=list)  # [step, mean token loss] per measurement
    best_step: int | None = None
    best_loss: float | None = None

    def add(self, step: int, loss: float) -> bool:
        """Record the dev loss at `step`; True if it is the lowest so far."""
        self.losses.append([step, loss])
        if self.best_loss is not None and loss >= self.best_loss:
            return False
        self.best_step, self.best_loss = step, loss
        return True

    @property
    def since_best(self) -> int:
        """Measurements after the best one."""
        return sum(1 for step, _ in self.losses if self.best_step is not None and step > self.best_step)

    def exhausted(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def to_state(self) -> dict[str, Any]:
        return {"dev_losses": self.losses, "best_step": self.best_step, "best_dev_loss": self.best_loss,
                "best_checkpoint": best_folder(self.best_step) if self.best_step is not None else None}

    @classmethod
    def from_state(cls, state: dict[str, Any], patience: int | None) -> DevTracker:
        """The tracker a checkpoint saved (`patience` may differ from the run that saved it)."""
        return cls(patience, [list(entry) for entry in state.get("dev_losses", [])], state.get("best_step"),
                   state.get("best_dev_loss"))
