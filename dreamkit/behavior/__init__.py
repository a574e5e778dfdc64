"""Behaviour learning in imagination: returns, objectives, actor-critic, exploration.

    imagination.imagine     world model prior rolled forward under the actor
    returns.lambda_return   TD(lambda) targets
    objectives              the `objectives` registry: Auto, Reinforce, Dynamics, Both
    actor_critic            ActorCritic (gin: dreamkit.ActorCritic)
    exploration             the `explorers` registry: Greedy, Random, Plan2Explore
"""

from dreamkit.behavior import objectives
from dreamkit.behavior import exploration
