"""A preallocated KV-cache layer for the rollout engine: one buffer per layer, written in place.

transformers' `DynamicLayer` grows by `torch.cat` at every decoding step, so each new token copies
the whole cache (N x heads x S x head_dim per layer, twice). `PreallocatedLayer` allocates its
buffers once for the longest sequence the rollout can reach and writes each new column in place;
the model sees a view of the filled columns, so attention still runs over the real length only.
It plugs into the model's own `DynamicCache` in place of its plain layers (`preallocate`), so the
model's mask and position logic is unchanged; caches with other layer types (sliding windows,
linear attention, legacy tuples) are left as the model built them.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """Keys and values of one attention layer in buffers of fixed capacity along the sequence.

    Buffers: (n, heads, capacity, head_dim); `keys`/`values` are views of the first `length`
    columns, which is what `DynamicLayer`'s readers (`get_seq_length`, mask sizes) expect.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, repeats: int = 1) -> None:
        """Copy the prefilled (n, heads, S, head_dim) keys and values, each row `repeats` times."""
        super().__init__()
        n, heads, length, _ = keys.shape
        if capacity < length:
            raise ValueError(f"cache capacity {capacity} is below the prefilled length {length}")
        self.dtype, self.device = keys.dtype, keys.device
        self._key_buffer = keys.new_empty((n * repeats, heads, capacity, keys.shape[-1]))
        self._value_buffer = values.new_empty((n * repeats, heads, capacity, values.shape[-1]))
        # Writing through a repeat view copies each prompt row into its G slots in one pass.
        self._key_buffer[:, :, :length] = keys.repeat_interleave(repeats, dim=0)
        self._value_buffer[:, :, :length] = values.repeat_interleave(repeats, dim=0)
        self.length = length
        self.is_initialized = True
        self._refresh_views()

    @property
    def capacity(self) -> int:
        """The most columns the buffers can hold."""
        return self._key_buffer.shape[2]

    def _refresh_views(self) -> None:
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new columns after the filled ones and return views of everything filled."""
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"preallocated KV cache overflow: {end} columns > capacity {self.capacity}")
        self._key_buffer[:, :, self.length : end] = key_states
        self._value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._refresh_views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        """Filled columns (the cache position of the next token)."""
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row `repeats` times (prompt-major), buffers included."""
        self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
        self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
        self._refresh_views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only rows `indices` (compaction of finished rows): one copy of the kept rows."""
        self._key_buffer = self._key_buffer.index_select(0, indices)
        self._value_buffer = self._value_buffer.index_select(0, indices)
        self._refresh_views()


def preallocate(cache: object, capacity: int, repeats: int) -> bool:
    """Swap every plain `DynamicLayer` of `cache` for a `PreallocatedLayer`, repeating rows G times.

    Returns True when the swap was made; False (cache untouched) when the cache is not a
    transformers `Cache` or holds any layer of another type, in which case the caller keeps the
    model's own cache.
    """
    if not isinstance(cache, Cache) or not cache.layers:
        return False
    if any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in cache.layers):
        return False
    cache.layers = [PreallocatedLayer(layer.keys, layer.values, capacity, repeats) for layer in cache.layers]
    return True
