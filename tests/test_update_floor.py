"""benchmarks/update_floor.py counts an update's dense FLOPs from its graph; the floor it
reports (issue 15) is only as good as this count, so it is checked on a graph whose
arithmetic is known by hand."""

import sys
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
from update_floor import count  # pylint: disable=wrong-import-position


def test_the_count_covers_convolutions_their_gradients_and_loop_bodies():
  conv = keras.layers.Conv2D(8, 4, strides=2)              # 16x16x3 -> 7x7x8
  deconv = keras.layers.Conv2DTranspose(3, 5, strides=2)   # 7x7x8 -> 17x17x3
  dense = keras.layers.Dense(16)                           # 7 -> 16, in a scan
  image, inputs = tf.zeros([2, 16, 16, 3]), tf.zeros([10, 5, 7])
  deconv(conv(image))
  dense(inputs[0])
  variables = conv.variables + deconv.variables + dense.variables

  @tf.function
  def update(image, inputs):
    with tf.GradientTape() as tape:
      decoded = deconv(conv(image))
      outputs = tf.scan(lambda _, x: dense(x), inputs, initializer=tf.zeros([5, 16]))
      loss = tf.reduce_sum(decoded) + tf.reduce_sum(outputs)
    return tape.gradient(loss, variables)

  graph = update.get_concrete_function(image, inputs).graph
  conv_flops = 2 * (2 * 7 * 7) * 4 * 4 * 3 * 8     # per output position: kh kw Cin Cout
  deconv_flops = 2 * (2 * 7 * 7) * 5 * 5 * 3 * 8   # positions of its 7x7 input
  dense_flops = 2 * 5 * 7 * 16 * 10                # a product per scan step
  assert dict(count(graph)) == {
      # Forward and kernel gradient of the convolution (the image's gradient is never
      # used, so it is not counted); forward, input and kernel gradients of the
      # transposed one.
      ('conv', 'float32'): 2 * conv_flops + 3 * deconv_flops,
      # Forward and kernel gradient, 10 steps each (the inputs need no gradient).
      ('matmul', 'float32'): 2 * dense_flops,
  }
