"""Evaluation episodes that can be played again: the runner's and `dreamkit eval`'s.

    env_seed, policy_seed, train_seed = evaluation.seeds(run_seed, step)
    episodes = evaluation.play(agent, envs, count, policy_seed)   # envs seeded env_seed

An evaluation at agent step `step` of a run seeded `seed` plays in fresh env copies
(copy i seeded `env_seed + i`) and draws the policy's random numbers (the
posterior's samples in the world model's filter) from TensorFlow's global seed set
to `policy_seed`, through a policy function traced anew (`Agent.fresh_policy`). Both
depend on (seed, step) only, never on what the run did before. So `dreamkit eval`
of the checkpoint saved at that step, with the run's seed and its number of eval
env copies, plays exactly the episodes the runner played, with the same returns.

The runner then sets the global seed to `train_seed`, so training's random numbers
go on from a stream of their own, whatever the evaluation drew.
"""

import numpy as np
import tensorflow as tf

from dreamkit.runner.driver import Driver

# Mixed into the seed sequence, so evaluation draws differ from every other stream.
_EVALUATION = 0xE7A1
# The longest policy video the runner writes, in agent steps (an Atari episode may
# last 27,000): the first this many steps of the first evaluation episode.
MAX_VIDEO_STEPS = 1000


def seeds(seed, step):
  """(env seed, policy seed, train seed) of the evaluation at agent step `step` of
  a run seeded `seed`: non-negative int32 values."""
  values = np.random.SeedSequence([int(seed), _EVALUATION, int(step)]).generate_state(3)
  return tuple(int(value % 2**31) for value in values)


def play(agent, envs, episodes, policy_seed, mode='eval'):
  """Plays `episodes` episodes with `agent.policy` in `mode` on fresh `envs`.

  Args:
    agent: the Agent.
    envs: a BatchedEnvs just built (its copies seeded by the caller); N copies run
      in lock step.
    episodes: how many to return.
    policy_seed: TensorFlow's global seed while the policy plays.
    mode: 'eval' (the actor's mode, as the runner evaluates) or 'train' (samples).

  Returns:
    The first `episodes` episodes to finish, each {key: [T, ...]} as the driver
    gives them (T - 1 agent steps after the first step). Copies finish in a fixed
    order for fixed seeds, so the list is the same on every replay with N copies.
  """
  tf.random.set_seed(policy_seed)
  policy = agent.fresh_policy(mode)
  driver = Driver(envs)
  finished = []
  driver.on_episode(lambda episode, worker: finished.append(episode))
  driver(policy, episodes=episodes)
  # Copies run in lock step, so several may finish more than `episodes`.
  return finished[:episodes]


def returns(episodes):
  """(returns, lengths) of played episodes: raw reward sums, agent steps."""
  return ([float(np.sum(episode['reward'])) for episode in episodes],
          [len(episode['reward']) - 1 for episode in episodes])


def policy_videos(agent, episode, max_steps=MAX_VIDEO_STEPS):
  """{'policy_<key>': uint8 [T, H, W, C]} of an episode's image keys: what the agent
  saw, its first `max_steps` + 1 steps."""
  return {f'policy_{key}': np.asarray(episode[key][:max_steps + 1])
          for key in agent.image_keys if key in episode}
