"""Speed of the Atari pipeline's parts at the reference sizes, on this machine.

    python benchmarks/atari_speed.py                 # float32 and bf16
    python benchmarks/atari_speed.py --precisions 32 --repeats 3

Builds the agent of `pipelines/atari_dreamerv2.gin` (RSSM 600, 32x32 latents, CNN
depth 48, batch 16 x 50, horizon 15) and prints a table: Atari env steps/s with a
random policy (the prefill rate), policy steps/s at batch 1, seconds per update
(world model + actor-critic), and the agent steps/s the training loop reaches with
`train_every` 16: 1 / (env + policy + update / 16).
"""

import argparse
import time

import numpy as np

from dreamkit import envs
from small_speed import build_agent, fake_batch, time_agent

PIPELINE = 'pipelines/atari_dreamerv2.gin'


def env_rate(steps=500):
  env = envs.make('atari:pong')
  rng = np.random.default_rng(0)
  env.reset()
  start = time.perf_counter()
  for _ in range(steps):
    obs = env.step(int(rng.integers(env.act_space.n)))
    if obs['is_last']:
      env.reset()
  seconds = (time.perf_counter() - start) / steps
  env.close()
  return seconds, env.obs_space, env.act_space


def measure(precision, obs_space, act_space, repeats):
  agent, _, policy_name = build_agent(
      [PIPELINE], [f'Pipeline.precision = {precision!r}'], obs_space, act_space)
  first, update, policy = time_agent(
      agent, fake_batch(obs_space, act_space), repeats, policy_steps=50)
  return policy_name, first, update, policy


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--precisions', nargs='+', default=['32', 'bf16'])
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  env_seconds, obs_space, act_space = env_rate()
  print(f'Atari env (Pong, DreamerV2 protocol, random actions): '
        f'{1 / env_seconds:.0f} agent steps/s = {4 / env_seconds:.0f} frames/s')
  print('| precision | policy | first update (trace) s | update s | policy steps/s '
        '| train loop agent steps/s (train_every 16) |')
  print('| --- | --- | --- | --- | --- | --- |')
  for precision in args.precisions:
    precision = int(precision) if precision.isdigit() else precision
    name, first, update, policy = measure(precision, obs_space, act_space, args.repeats)
    loop = 1 / (env_seconds + policy + update / 16)
    print(f'| {precision} | {name} | {first:.1f} | {update:.2f} | {1 / policy:.0f} '
          f'| {loop:.1f} |')


if __name__ == '__main__':
  main()
