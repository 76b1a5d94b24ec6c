"""Experience that leaves and enters agents: the transition format, datasets, recording, prefill.

See docs/experience.md. `TransitionBatch` is the one format every backend reads and writes.
"""

from polyrl.experience.batch import TransitionBatch, TransitionSchema
from polyrl.experience.datasets import read_experience, write_experience
from polyrl.experience.recorder import ExperienceRecorder

__all__ = ["ExperienceRecorder", "TransitionBatch", "TransitionSchema", "read_experience", "write_experience"]
