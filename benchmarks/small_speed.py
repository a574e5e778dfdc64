"""Speed of one update and one policy step of the small vector pipelines, on this CPU.

    python benchmarks/small_speed.py                          # CartPole and Pendulum
    python benchmarks/small_speed.py --jit 0 1 --repeats 20   # with and without XLA

The CartPole and Pendulum pipelines (64-unit networks, 16 x 16 latents, batch 16 x 50,
horizon 15) are small enough that an update's time is mostly per-op overhead rather
than arithmetic, so their choices (XLA, thread counts) can differ from the Atari
sizes measured by atari_speed.py. Prints a Markdown table: the first update (tracing
included), the median update, policy steps/s at batch 1 and the agent steps/s of the
training loop (`train_every` from the pipeline, env time excluded).
"""

import argparse
import time

import gin
import numpy as np
import tensorflow as tf

from dreamkit import config
from dreamkit import envs
from dreamkit import agent as agent_lib
from dreamkit import precision as precision_lib
from dreamkit.runner.pipeline import Pipeline

PIPELINES = {'cartpole': ('pipelines/cartpole_dreamerv2.gin', 'gym:CartPole-v1'),
             'pendulum': ('pipelines/pendulum_dreamerv2.gin', 'gym:Pendulum-v1')}


def fake_batch(obs_space, act_space, batch=16, length=50):
  """A batch of the replay's layout for `obs_space` with random content (speed does
  not depend on it): uint8 keys (images) uniform, other observation keys and the
  reward standard normal, one-hot or uniform actions, one episode start per row."""
  rng = np.random.default_rng(0)
  shape = (batch, length)
  data = {}
  for key, space in obs_space.items():
    if key.startswith('is_'):
      data[key] = np.zeros(shape, bool)
    elif space.dtype == np.uint8:
      data[key] = rng.integers(0, 255, shape + space.shape, np.uint8)
    else:
      data[key] = rng.normal(size=shape + space.shape).astype(np.float32)
  if hasattr(act_space, 'n'):
    data['action'] = np.eye(act_space.n, dtype=np.float32)[rng.integers(0, act_space.n, shape)]
  else:
    data['action'] = rng.uniform(-1, 1, shape + act_space.shape).astype(np.float32)
  data['is_first'][:, 0] = True
  return {key: tf.constant(value) for key, value in data.items()}


def build_agent(files, bindings, obs_space, act_space):
  """The agent of pipeline `files` + `bindings`, built as the runner builds it.

  Returns (agent, settings, Keras precision policy name); the settings are the
  Pipeline's bound values.
  """
  gin.clear_config()
  config.load(files, bindings, finalize=False)
  settings = gin.get_configurable(Pipeline)(replay=None, outputs=[], logdir='unused')
  policy = precision_lib.set_precision(settings.precision)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
  agent = agent_lib.build(obs_space, act_space, step, settings.world_model,
                          settings.actor_critic, settings.explorer, settings.agent)
  return agent, settings, policy


def time_agent(agent, batch, repeats, policy_steps=100):
  """Seconds of the first update (tracing included), the median of `repeats` more,
  and the mean policy step at batch 1 in 'train' mode over `policy_steps` steps."""
  start = time.perf_counter()
  agent.train(batch)
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    agent.train(batch)
    times.append(time.perf_counter() - start)
  return first, float(np.median(times)), time_policy(agent, batch, policy_steps)


def time_policy(agent, batch, steps):
  """Mean seconds of a policy step at batch 1 in 'train' mode (the first call, which
  traces, not counted), numpy observations in and the action back as numpy, as the
  runner's driver does."""
  obs = {key: value[:1, 0].numpy() for key, value in batch.items() if key != 'action'}
  _, state = agent.policy(obs, None, mode='train')
  start = time.perf_counter()
  for _ in range(steps):
    out, state = agent.policy(obs, state, mode='train')
    out['action'].numpy()
  return (time.perf_counter() - start) / steps


def measure(task, jit, repeats, bindings):
  pipeline, env_name = PIPELINES[task]
  env = envs.make(env_name)
  obs_space, act_space = env.obs_space, env.act_space
  env.close()
  agent, settings, _ = build_agent(
      [pipeline], [f'Agent.jit_compile = {bool(jit)}'] + list(bindings), obs_space, act_space)
  train_every = settings.train_every
  first, update, policy = time_agent(agent, fake_batch(obs_space, act_space), repeats)
  return first, update, policy, 1 / (policy + update / train_every), train_every


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--tasks', nargs='+', default=list(PIPELINES), choices=list(PIPELINES))
  parser.add_argument('--jit', nargs='+', type=int, default=[0, 1])
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='Extra gin binding (repeatable).')
  args = parser.parse_args()
  print('| task | XLA | first update (trace) s | update ms | policy steps/s '
        '| loop agent steps/s (train_every) |')
  print('| --- | --- | --- | --- | --- | --- |')
  for task in args.tasks:
    for jit in args.jit:
      first, update, policy, loop, every = measure(task, jit, args.repeats, args.bindings)
      print(f'| {task} | {"on" if jit else "off"} | {first:.1f} | {update * 1000:.0f} '
            f'| {1 / policy:.0f} | {loop:.1f} ({every}) |', flush=True)


if __name__ == '__main__':
  main()
