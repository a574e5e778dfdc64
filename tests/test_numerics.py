"""One agent update's numbers, pinned: speed work must not change the math (issue 15).

A tiny agent (test_agent.TINY: 16x16 image and vector observations, discrete actions,
the component graph of pipelines/dreamerv2_defaults.gin) is built from fixed seeds and
runs two compiled updates (`Agent.train`, the second continuing from the first's state)
on fixed synthetic batches. Every `*_loss` and `*_grad_norm` metric of both updates
(world model: model, kl, image, vector, reward, discount; actor; critic) and a few
more that the losses are made of (entropies, critic targets, advantages) must match
tests/data/update_golden.json. The first update pins the forward pass and the
gradients; the second, computed from the weights the first update's optimizer steps
wrote, pins those steps too (Adam, clipping, weight decay, the slow critic's copy).

The numbers also follow test_agent.TINY, the slots of dreamerv2_defaults.gin and the
constructors' defaults. Rewrite the golden file only for a change that is meant to
change the numbers, and say so in the commit:

    nice -n 19 python tests/test_numerics.py --regenerate

Tolerance: rtol 1e-3 (plus atol 1e-5 for values near zero). On one machine the
numbers are bitwise reproducible: between processes, and with one intra-op thread
instead of two. Across CPUs they are not: oneDNN picks its kernels by CPU (AVX2,
AVX-512, AMX) and sums in other orders. Swapping oneDNN's kernels for Eigen's
(TF_ENABLE_ONEDNN_OPTS=0), a stand-in for another CPU, moved the pinned numbers by at
most 3.6e-6 relative, ~300x inside the tolerance. Changes of the math move them by
far more: tried once each, a kl loss scale of 1.1, a reward loss scale of 1.01,
actor_ent 2.2e-3 for 2e-3, discount_lambda 0.94, a 10% model or critic learning
rate, kl_balance 0.5, grad_heads without reward and discount, imag_horizon 4: every
one fails the test. Too small to see: kl_balance 0.79 for 0.8, a kl scale of 1.01.
A categorical sample could flip on another CPU if its uniform draw fell within
~1e-6 of a class boundary; that would show as a jump far beyond 1e-3 in the kl and
the entropies, and would need the seed changed, not the tolerance.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Run as a script, without conftest.py.

import keras  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

import test_agent as tiny  # pylint: disable=wrong-import-position

GOLDEN = Path(__file__).parent / 'data' / 'update_golden.json'
SEED = 0
RTOL, ATOL = 1e-3, 1e-5
# Metrics pinned besides every `*_loss` and `*_grad_norm`: what the losses are made of.
ALSO = ('model_kl', 'prior_ent', 'post_ent', 'actor_ent', 'actor_advantage',
        'critic_target', 'critic_slow', 'critic', 'reward_mean')


def pinned(metrics):
  """The metrics the golden file holds, as Python floats."""
  return {key: float(value) for key, value in sorted(metrics.items())
          if key.endswith(('_loss', '_grad_norm')) or key in ALSO}


def run_updates():
  """[metrics of update 1, metrics of update 2] of a freshly seeded tiny agent."""
  keras.mixed_precision.set_global_policy('float32')
  # As tests/conftest.py: Python's `random` seeds the Keras initializers, TensorFlow's
  # global seed the graph-level seed of the random ops inside the traced update.
  keras.utils.set_random_seed(SEED)
  agent = tiny.make_agent(tiny.DISCRETE, image=True)
  space = tiny.obs_space(image=True)
  state, first = agent.train(tiny.random_steps(space, tiny.DISCRETE, (tiny.B, tiny.T), 0))
  _, second = agent.train(
      tiny.random_steps(space, tiny.DISCRETE, (tiny.B, tiny.T), 1), state)
  return [pinned(first), pinned(second)]


def mismatches(golden, updates, rtol=RTOL, atol=ATOL):
  """Lines naming each pinned metric that is missing or outside the tolerance."""
  lines = []
  for index, (expected, actual) in enumerate(zip(golden, updates), 1):
    for key, value in expected.items():
      if key not in actual:
        lines.append(f'update {index}: {key} is no longer a metric')
      elif not np.isclose(actual[key], value, rtol=rtol, atol=atol):
        lines.append(f'update {index}: {key} = {actual[key]!r}, golden {value!r} '
                     f'(relative change {abs(actual[key] - value) / max(abs(value), 1e-30):.2e})')
  if len(golden) != len(updates):
    lines.append(f'{len(updates)} updates, golden {len(golden)}')
  return lines


def test_update_matches_the_golden_numbers():
  golden = json.loads(GOLDEN.read_text())['updates']
  wrong = mismatches(golden, run_updates())
  assert not wrong, (
      'One update no longer computes the pinned numbers (tests/test_numerics.py '
      'explains; regenerate only for an intended change):\n' + '\n'.join(wrong))


def test_the_comparison_can_fail():
  """The tolerance admits CPU noise and nothing more: a 1e-6 relative change passes,
  a 1% change of any one pinned metric fails."""
  golden = json.loads(GOLDEN.read_text())['updates']
  assert not mismatches(golden, [{k: v * (1 + 1e-6) for k, v in u.items()} for u in golden])
  for index, update in enumerate(golden):
    for key in update:
      changed = [dict(u) for u in golden]
      changed[index][key] = update[key] * 1.01 + (1e-3 if update[key] == 0 else 0)
      assert mismatches(golden, changed), (index, key)


def regenerate():
  updates = run_updates()
  cpu = next((line.split(':', 1)[1].strip() for line in
              Path('/proc/cpuinfo').read_text().splitlines()
              if line.startswith('model name')), platform.processor())
  GOLDEN.parent.mkdir(exist_ok=True)
  GOLDEN.write_text(json.dumps({
      'about': 'Written by `python tests/test_numerics.py --regenerate`; see that file.',
      'generated_on': {'cpu': cpu, 'tensorflow': tf.__version__,
                       'keras': keras.__version__},
      'updates': updates,
  }, indent=1) + '\n')
  print(f'Wrote {GOLDEN}: {sum(len(u) for u in updates)} numbers.')


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--regenerate', action='store_true',
                      help=f'rewrite {GOLDEN.name} from this checkout')
  parser.add_argument('--check', action='store_true',
                      help='compare with the golden file and print the differences')
  options = parser.parse_args()
  if options.regenerate:
    regenerate()
  elif options.check:
    wrong = mismatches(json.loads(GOLDEN.read_text())['updates'], run_updates())
    print('\n'.join(wrong) or 'All pinned numbers match.')
    sys.exit(1 if wrong else 0)
  else:
    parser.print_help()
