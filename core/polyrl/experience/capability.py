"""Which backend/algorithms can exchange experience: the "experience.*" features, checked by call.

`polyrl.features.check_features` refuses a *spec* that uses a feature its algorithm lacks (a
`prefill`); the calls that are no spec setting (Agent.add_experience, Agent.sample_experience,
a callback implementing on_experience) check here, with the same message: what is missing and
which installed backend/algorithms have it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.errors import UnsupportedOptionError
from polyrl.features import FEATURES, declaring

if TYPE_CHECKING:
    from polyrl.backend import BackendInfo

ADD = "experience.add"
COLLECT = "experience.collect"


def require_feature(info: BackendInfo, algorithm: str, feature: str, why: str = "") -> None:
    """UnsupportedOptionError unless `algorithm` of backend `info` declares `feature`.

    `why` says what asked for it (e.g. "a callback implements on_experience") when the feature's
    own description does not.
    """
    if feature in info.algorithms[algorithm].features:
        return
    described = FEATURES[feature][1] if feature in FEATURES else feature
    asked = f"{why}, but " if why else ""
    raise UnsupportedOptionError(
        f"{asked}{info.name}/{algorithm} does not support {described} (feature {feature!r}); "
        f"installed backend/algorithms that do: {declaring(feature) or 'none'}"
    )


__all__ = ["ADD", "COLLECT", "declaring", "require_feature"]
