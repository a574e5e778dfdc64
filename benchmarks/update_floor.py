"""The compute floor of one Atari update on this CPU: its dense FLOPs over the peak
rate this machine's TensorFlow reaches.

    python benchmarks/update_floor.py                          # float32 and bf16
    python benchmarks/update_floor.py --reference-seconds 8.80 # with the speed goals

1. Counts the dense arithmetic of one `Agent.train` call at the Atari sizes (RSSM
   600, 32x32 latents, CNN depth 48, batch 16 x 50, horizon 15) from its traced graph,
   inside the loop bodies too (a `tf.scan` body counted once per step): 2 M N K per
   matrix product, 2 x (output positions) x kh kw Cin Cout per convolution and per
   convolution gradient (`Conv2DBackpropInput`, also the transposed convolutions'
   forward, and `Conv2DBackpropFilter`). Element-wise work is left out: the count is a
   lower bound on what an update must compute.
2. Measures the rate TensorFlow reaches here on the ideal case: square matrix
   products (n = 2048, both cores), in float32 and bfloat16.
3. Prints, per precision, the FLOPs, the floor (FLOPs / peak rate), the update's own
   median time and the rate it reaches, and, given `--reference-seconds` (the
   reference's median update from `bash ../shared/refbench/run.sh`), the rate a goal
   of 0.33x (float32) or 0.2x (bf16) of it would need.

An update that needs more than the peak rate is below the floor: no change of code
reaches it on this CPU without computing less (another model) or another machine.
"""

import argparse
import collections
import multiprocessing
import time

import numpy as np
import tensorflow as tf

from dreamkit import envs
from small_speed import build_agent, fake_batch

PIPELINE = 'pipelines/atari_dreamerv2.gin'
GOALS = {'32': 0.33, 'bf16': 0.2}
CONVS = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter')
MATMULS = ('MatMul', 'BatchMatMul', 'BatchMatMulV2', 'BatchMatMulV3')
LOOPS = ('While', 'StatelessWhile')
CALLS = ('PartitionedCall', 'StatefulPartitionedCall')
BRANCHES = ('If', 'StatelessIf')


def _size(shape):
  dims = shape.as_list()
  if any(d is None for d in dims):
    raise ValueError(f'unknown shape {shape}: the count needs static shapes')
  return int(np.prod(dims))


def op_flops(op):
  """Dense FLOPs of one op (0 for ops that are not matrix products or convolutions)."""
  if op.type in MATMULS:
    a, b = (x.shape.as_list() for x in op.inputs[:2])
    attrs = op.node_def.attr
    adj_a = attrs['transpose_a'].b if 'transpose_a' in attrs else attrs['adj_x'].b
    adj_b = attrs['transpose_b'].b if 'transpose_b' in attrs else attrs['adj_y'].b
    rows, inner = (a[-1], a[-2]) if adj_a else (a[-2], a[-1])
    cols = b[-2] if adj_b else b[-1]
    return 2 * _size(op.outputs[0].shape) // (rows * cols) * rows * inner * cols
  if op.type in CONVS:
    if op.type == 'Conv2D':
      positions, kernel = op.outputs[0].shape, op.inputs[1].shape
    elif op.type == 'Conv2DBackpropInput':
      positions, kernel = op.inputs[2].shape, op.inputs[1].shape
    else:  # Conv2DBackpropFilter: the kernel is the output.
      positions, kernel = op.inputs[2].shape, op.outputs[0].shape
    if op.get_attr('data_format') != b'NHWC':
      raise ValueError(f'{op.name}: only NHWC is counted')
    kh, kw, cin, cout = kernel.as_list()
    return 2 * _size(positions) // positions[-1] * kh * kw * cin * cout
  return 0


def count(graph, functions=None, times=1, totals=None):
  """{(op kind, dtype): FLOPs} over `graph` and the functions it calls, loop bodies
  `times` their trip count (which must be static)."""
  functions = dict(functions or {})
  functions.update(getattr(graph, '_functions', {}))
  totals = collections.Counter() if totals is None else totals

  def inner(name):
    return functions[name].graph

  for op in graph.get_operations():
    if op.type in LOOPS:
      trips = tf.get_static_value(op.inputs[1])  # maximum_iterations
      if trips is None or trips < 0:
        raise ValueError(f'{op.name}: the trip count is not static')
      count(inner(op.get_attr('body').name), functions, times * int(trips), totals)
    elif op.type in CALLS:
      count(inner(op.get_attr('f').name), functions, times, totals)
    elif op.type in BRANCHES:  # The costlier branch: a bound from above of the two.
      options = [count(inner(op.get_attr(b).name), functions, times)
                 for b in ('then_branch', 'else_branch')]
      totals.update(max(options, key=lambda c: sum(c.values())))
    elif any(out.consumers() for out in op.outputs):  # Unused: pruned before it runs.
      flops = op_flops(op)
      if flops:
        kind = 'conv' if op.type in CONVS else 'matmul'
        totals[(kind, op.outputs[0].dtype.name)] += times * flops
  return totals


def peak_rate(dtype, size=2048, seconds=3.0):
  """FLOP/s of a square matrix product in `dtype`: the best of several timed runs."""
  a = tf.random.normal([size, size], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
  product = tf.function(lambda x, y: tf.matmul(x, y))
  product(a, b).numpy()
  best, start = float('inf'), time.perf_counter()
  while time.perf_counter() - start < seconds:
    begin = time.perf_counter()
    product(a, b).numpy()
    best = min(best, time.perf_counter() - begin)
  return 2 * size ** 3 / best


def measure(precision, repeats):
  """(FLOPs by (kind, dtype), peak float32 FLOP/s, peak bfloat16 FLOP/s, update s)."""
  env = envs.make('atari:pong')
  obs_space, act_space = env.obs_space, env.act_space
  env.close()
  agent, _, _ = build_agent(
      [PIPELINE], [f'Pipeline.precision = {precision!r}'], obs_space, act_space)
  batch = fake_batch(obs_space, act_space)
  state = agent.world_model.dynamics.initial(int(batch['is_first'].shape[0]))
  agent.create_variables()
  graph = agent._train_fn.get_concrete_function(batch, state).graph  # pylint: disable=protected-access
  flops = dict(count(graph))
  peaks = peak_rate(tf.float32), peak_rate(tf.bfloat16)
  agent.train(batch)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    agent.train(batch)
    times.append(time.perf_counter() - start)
  return flops, peaks[0], peaks[1], float(np.median(times))


def measure_apart(*args):
  with multiprocessing.get_context('spawn').Pool(1) as pool:
    return pool.apply(measure, args)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--precisions', nargs='+', default=['32', 'bf16'], choices=list(GOALS))
  parser.add_argument('--repeats', type=int, default=3, help='Timed updates per precision.')
  parser.add_argument('--reference-seconds', type=float,
                      help="The reference's median float32 update on this machine.")
  args = parser.parse_args()
  print('| precision | dense GFLOP (conv / matmul; bf16 share) | peak GFLOP/s (matmul n=2048, '
        'fp32 / bf16) | floor s | update s | reached GFLOP/s | goal s | needed GFLOP/s |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for precision in args.precisions:
    flops, fp32, bf16, update = measure_apart(
        int(precision) if precision.isdigit() else precision, args.repeats)
    total = sum(flops.values())
    conv = sum(v for (kind, _), v in flops.items() if kind == 'conv')
    low = sum(v for (_, dtype), v in flops.items() if dtype == 'bfloat16')
    # Each op at its own dtype's peak rate.
    floor = (total - low) / fp32 + low / bf16
    goal = (GOALS[precision] * args.reference_seconds) if args.reference_seconds else None
    goal_text = f'{goal:.2f} | {total / goal / 1e9:.0f}' if goal else '- | -'
    print(f'| {precision} | {total / 1e9:.0f} ({conv / 1e9:.0f} / {(total - conv) / 1e9:.0f}; '
          f'{low / total:.0%}) | {fp32 / 1e9:.0f} / {bf16 / 1e9:.0f} | {floor:.2f} '
          f'| {update:.2f} | {total / update / 1e9:.0f} | {goal_text} |', flush=True)


if __name__ == '__main__':
  main()
