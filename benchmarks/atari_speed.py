"""Speed of the Atari pipeline's parts at the reference sizes, on this machine.

    python benchmarks/atari_speed.py                 # float32 and bf16
    python benchmarks/atari_speed.py --precisions 32 --repeats 3

Builds the agent of `pipelines/atari_dreamerv2.gin` (RSSM 600, 32x32 latents, CNN
depth 48, batch 16 x 50, horizon 15) and prints a table: Atari env steps/s with a
random policy (the prefill rate), policy steps/s at batch 1 (traced as the pipeline
has it, and with XLA: `Agent.policy_jit_compile = True`), seconds per update (world
model + actor-critic), the agent steps/s the training loop reaches with
`train_every` 16: 1 / (env + policy + update / 16), with the faster policy, and the
peak resident memory of the updates and policy steps. Each precision runs in a fresh
process, so the peak is that precision's alone (the XLA policy is built after it is
read).
"""

import argparse
import multiprocessing
import resource
import time

import numpy as np

from dreamkit import envs
from small_speed import build_agent, fake_batch, time_agent, time_policy

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


def measure(precision, obs_space, act_space, repeats, bindings):
  bindings = [f'Pipeline.precision = {precision!r}'] + list(bindings)
  batch = fake_batch(obs_space, act_space)
  agent, _, policy_name = build_agent([PIPELINE], bindings, obs_space, act_space)
  first, update, policy = time_agent(agent, batch, repeats, policy_steps=50)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
  xla, _, _ = build_agent(
      [PIPELINE], bindings + ['Agent.policy_jit_compile = True'], obs_space, act_space)
  return policy_name, first, update, policy, time_policy(xla, batch, 50), peak


def measure_apart(*args):
  """`measure` in a fresh process: its peak memory is this precision's own."""
  with multiprocessing.get_context('spawn').Pool(1) as pool:
    return pool.apply(measure, args)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--precisions', nargs='+', default=['32', 'bf16'])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='Extra gin binding (repeatable).')
  args = parser.parse_args()
  env_seconds, obs_space, act_space = env_rate()
  print(f'Atari env (Pong, DreamerV2 protocol, random actions): '
        f'{1 / env_seconds:.0f} agent steps/s = {4 / env_seconds:.0f} frames/s')
  print('| precision | policy | first update (trace) s | update s | policy ms '
        '| policy ms, XLA | train loop agent steps/s (train_every 16) | peak RSS GiB |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for precision in args.precisions:
    precision = int(precision) if precision.isdigit() else precision
    name, first, update, policy, xla, peak = measure_apart(
        precision, obs_space, act_space, args.repeats, args.bindings)
    loop = 1 / (env_seconds + min(policy, xla) + update / 16)
    print(f'| {precision} | {name} | {first:.1f} | {update:.2f} | {policy * 1e3:.1f} '
          f'| {xla * 1e3:.1f} | {loop:.1f} | {peak / 2**30:.2f} |', flush=True)


if __name__ == '__main__':
  main()
