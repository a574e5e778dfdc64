"""An example dreamkit plugin: an IMPALA-style residual CNN encoder.

Load it with `--plugin plugins/impala_encoder.py`; gin then knows it as
`@encoders.ImpalaEncoder`, bound without parentheses as a factory that the world
model calls (`WorldModel.encoder = @encoders.ImpalaEncoder`). It differs from the
built-in DreamerEncoder: each stage is a 3x3 conv, a 3x3 max-pool with stride 2 and
two residual blocks, and the feature map is flattened through a Dense layer to a
fixed embedding size. Vector keys are concatenated to that embedding unchanged.

A plugin needs three things:
  1. subclass the kind's interface (`dreamkit.networks.Encoder`),
  2. give the constructor explicit parameters (gin checks their names),
  3. register the class with `@dreamkit.register('encoders')`.
"""

import re

import keras
import tensorflow as tf

import dreamkit
from dreamkit.networks import Encoder
from dreamkit.networks.base import input_keys


class ResidualBlock(keras.layers.Layer):

  def __init__(self, depth):
    super().__init__()
    self.conv1 = keras.layers.Conv2D(depth, 3, padding='same')
    self.conv2 = keras.layers.Conv2D(depth, 3, padding='same')

  def call(self, x):
    y = self.conv1(tf.nn.relu(x))
    y = self.conv2(tf.nn.relu(y))
    return x + y


@dreamkit.register('encoders')
class ImpalaEncoder(Encoder):
  """IMPALA residual CNN over image keys, Dense to `embed_size`; vectors appended.

  Args:
    cnn_keys: regex of the image keys to encode.
    depths: channels of each stage (conv, max-pool /2, two residual blocks).
    embed_size: size of the Dense projection of the flattened feature map.
  """

  def __init__(self, cnn_keys=r'image', depths=(16, 32, 32), embed_size=256):
    super().__init__()
    self.cnn_keys = cnn_keys
    self.stages = []
    for depth in depths:
      self.stages.append([
          keras.layers.Conv2D(depth, 3, padding='same'),
          keras.layers.MaxPooling2D(3, strides=2, padding='same'),
          ResidualBlock(depth), ResidualBlock(depth)])
    self.project = keras.layers.Dense(embed_size)

  def call(self, obs):
    keys = input_keys(obs)
    image_keys = [key for key in keys if re.match(self.cnn_keys, key)]
    if not image_keys:
      raise ValueError(
          f'ImpalaEncoder found no image key matching {self.cnn_keys!r} in {keys}.')
    x = tf.concat([obs[key] for key in image_keys], -1)
    # Fold [B, T] (or [B]) into one batch axis for the convolutions, then unfold.
    batch_dims = tf.shape(x)[:-3]
    x = tf.reshape(x, tf.concat([[-1], tf.shape(x)[-3:]], 0))
    for conv, pool, block1, block2 in self.stages:
      x = block2(block1(pool(conv(x))))
    x = tf.reshape(tf.nn.relu(x), [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]])
    x = tf.nn.relu(self.project(x))
    x = tf.reshape(x, tf.concat([batch_dims, [x.shape[-1]]], 0))
    vectors = [tf.cast(obs[key], x.dtype) for key in keys if key not in image_keys]
    return tf.concat([x] + vectors, -1)
