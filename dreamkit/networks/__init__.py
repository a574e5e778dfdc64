"""The world model's networks: interfaces, built-in encoders, dynamics and heads.

    from dreamkit.networks import encoders, dynamics, heads
    encoders.registry.names()   # ['DreamerEncoder', ...]
"""

from dreamkit.networks.base import Dynamics, Encoder, Head, input_keys
