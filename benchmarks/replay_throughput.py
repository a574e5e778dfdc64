"""Replay throughput and memory: fill a store, sample 16x50 batches, watch RSS.

    python benchmarks/replay_throughput.py                  # fills of 1e5 and 1e6 steps
    python benchmarks/replay_throughput.py --steps 2e5 --small-steps 2e4,5e4

Each fill runs in its own process (so resident memory is not inherited from the
previous fill): it writes synthetic Atari-like episodes (64x64x1 uint8 frames: a
static background, moving sprites and sparse noise, so they compress roughly like
game frames) through `add_episode`, then samples batches with the store's sampler
alone and through `dataset()` (tf.data, imported only then), and reports batches per
second and psutil RSS after each phase. Memory that stays flat from the small to
the large fill shows that RSS does not grow with the stored steps.
"""

import argparse
import ctypes
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

from dreamkit import replay as replay_lib


def rss_mb():
  """Resident memory in MB, after returning freed heap pages to the system.

  glibc keeps freed blocks (e.g. of the synthetic episodes) mapped; trimming first
  makes the number track what the process actually holds.
  """
  try:
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass  # Not glibc: report RSS as it is.
  return psutil.Process().memory_info().rss / 2**20


def synthetic_episode(rng, length, actions=18):
  """An episode of Atari-like 64x64x1 frames and the usual step keys."""
  rows = np.arange(64)[:, None]
  background = ((rows // 8) * 20 + (np.arange(64)[None] // 16) * 5).astype(np.uint8)
  frames = np.repeat(background[None, :, :, None], length, 0)
  steps = np.arange(length)
  for sprite in range(3):
    speed = rng.integers(1, 5, size=2)
    y = (rng.integers(56) + steps * speed[0]) % 56
    x = (rng.integers(56) + steps * speed[1]) % 56
    for t in range(length):
      frames[t, y[t]:y[t] + 6, x[t]:x[t] + 6] = 200 + 20 * sprite
  noise = rng.random(frames.shape) < 0.01
  frames[noise] = 255
  action = np.zeros((length, actions), np.float32)
  action[steps[1:], rng.integers(actions, size=length - 1)] = 1
  return {
      'image': frames,
      'action': action,
      'reward': (rng.random(length) < 0.02).astype(np.float32),
      'is_first': steps == 0,
      'is_last': steps == length - 1,
      'is_terminal': steps == length - 1,
  }


def run_one(args):
  """Fill one store and measure it; prints one JSON line."""
  directory = pathlib.Path(args.store)
  result = {
      'fill_steps': int(args.fill), 'rss_start_mb': rss_mb(),
      'load_average': os.getloadavg()[0]}
  replay = replay_lib.HDF5Replay(
      directory, capacity=2e6, minlen=50, maxlen=50, prioritize_ends=True,
      cache_steps=args.cache_steps, open_files=args.open_files,
      compression=args.compression, chunk_steps=args.chunk_steps, seed=0)
  rng = np.random.default_rng(0)
  start, making = time.time(), 0.0
  while replay.stats['steps'] < args.fill:
    begin = time.time()
    length = int(min(rng.integers(500, 1500), args.fill - replay.stats['steps']))
    episode = synthetic_episode(rng, max(length, 50))
    making += time.time() - begin
    replay.add_episode(episode)
  result['fill_seconds'] = time.time() - start - making
  result['episodes'] = replay.stats['episodes']
  result['disk_mb'] = sum(p.stat().st_size for p in directory.glob('*.h5')) / 2**20
  result['rss_filled_mb'] = rss_mb()

  replay.sample(16, 50)  # Warm-up: the first batch opens files.
  start, cpu = time.time(), time.process_time()
  for _ in range(args.batches):
    replay.sample(16, 50)
  result['sampler_batches_per_s'] = args.batches / (time.time() - start)
  # CPU time is less disturbed than wall time when other jobs share the cores.
  result['sampler_cpu_ms'] = (time.process_time() - cpu) / args.batches * 1e3
  result['rss_sampled_mb'] = rss_mb()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  result['rss_tf_imported_mb'] = rss_mb()
  iterator = iter(replay.dataset(16, 50))
  next(iterator)
  start, cpu = time.time(), time.process_time()
  for _ in range(args.batches):
    batch = next(iterator)
  result['tfdata_batches_per_s'] = args.batches / (time.time() - start)
  result['tfdata_cpu_ms'] = (time.process_time() - cpu) / args.batches * 1e3
  assert batch['image'].dtype == tf.uint8
  assert batch['image'].shape == (16, 50, 64, 64, 1)
  result['rss_tfdata_mb'] = rss_mb()
  replay.close()
  print(json.dumps(result), flush=True)


def print_table(results, args):
  print(f'\nHDF5Replay, {args.compression}, chunk_steps={args.chunk_steps}, '
        f'cache_steps={args.cache_steps}, open_files={args.open_files}, '
        f'batch 16x50 of 64x64x1 uint8, {args.batches} batches per measurement\n')
  columns = [
      ('stored steps', 'fill_steps', '{:,}'), ('episodes', 'episodes', '{}'),
      ('fill s', 'fill_seconds', '{:.0f}'), ('disk MB', 'disk_mb', '{:.0f}'),
      ('sampler batch/s', 'sampler_batches_per_s', '{:.1f}'),
      ('sampler CPU ms/batch', 'sampler_cpu_ms', '{:.1f}'),
      ('tf.data batch/s', 'tfdata_batches_per_s', '{:.1f}'),
      ('tf.data CPU ms/batch', 'tfdata_cpu_ms', '{:.1f}'),
      ('RSS filled MB', 'rss_filled_mb', '{:.0f}'),
      ('RSS sampled MB', 'rss_sampled_mb', '{:.0f}'),
      ('RSS +TF MB', 'rss_tf_imported_mb', '{:.0f}'),
      ('RSS tf.data MB', 'rss_tfdata_mb', '{:.0f}'),
      ('load avg', 'load_average', '{:.1f}')]
  print('| ' + ' | '.join(name for name, _, _ in columns) + ' |')
  print('|' + '---|' * len(columns))
  for result in results:
    cells = [fmt.format(result.get(key, float('nan'))) for _, key, fmt in columns]
    print('| ' + ' | '.join(cells) + ' |')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=float, default=1e6, help='large fill (steps)')
  parser.add_argument(
      '--small-steps', default='1e5', help='smaller fills, comma-separated')
  parser.add_argument('--batches', type=int, default=200, help='batches per timing')
  parser.add_argument(
      '--compression', default='gzip', choices=('gzip', 'lzf', 'none'),
      help='image compression (the store default is gzip)')
  parser.add_argument('--chunk-steps', type=int, default=50)
  parser.add_argument('--cache-steps', type=int, default=10000)
  parser.add_argument('--open-files', type=int, default=32)
  parser.add_argument(
      '--directory', default=None, help='parent of the temporary stores')
  parser.add_argument('--fill', type=float, default=None, help=argparse.SUPPRESS)
  parser.add_argument('--store', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.fill is not None:
    return run_one(args)
  results = []
  fills = {int(args.steps)} | {
      int(float(fill)) for fill in args.small_steps.split(',') if fill}
  for fill in sorted(fills):
    directory = tempfile.mkdtemp(prefix='replay_bench_', dir=args.directory)
    command = [
        sys.executable, __file__, '--fill', str(fill), '--store', directory,
        '--batches', str(args.batches), '--compression', args.compression,
        '--chunk-steps', str(args.chunk_steps),
        '--cache-steps', str(args.cache_steps), '--open-files', str(args.open_files)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    try:
      output = subprocess.run(
          command, check=True, capture_output=True, text=True, env=env).stdout
    finally:
      shutil.rmtree(directory, ignore_errors=True)
    results.append(json.loads(output.strip().splitlines()[-1]))
    print(json.dumps(results[-1]), flush=True)
  print_table(results, args)


if __name__ == '__main__':
  main()
