"""Behaviour learning in imagination: returns, objectives, actor-critic, exploration.

    imagination.imagine     world model prior rolled forward under the actor
    returns.lambda_return   TD(lambda) targets
    objectives              the `objectives` registry: Reinforce, Dynamics, Both and
                            the exploration behaviours Greedy, Plan2Explore, RandomPolicy
    actor_critic            ActorCritic (gin: dreamkit.ActorCritic)
"""

# Importing the package fills the `objectives` registry with the objectives and the
# exploration behaviours (the registry loads `dreamkit.behavior.objectives`).
from dreamkit.behavior import objectives
from dreamkit.behavior import exploration
