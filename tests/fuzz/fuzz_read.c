/* fuzz_read.c — libFuzzer harness for the file readers: any bytes go
 * through dm_file_read_mem (gzip, safetensors, .npy); whatever is accepted
 * is read in full, written to memory and must read back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touch every byte of every tensor so that out-of-bounds views show. */
static unsigned
touch(const struct dm_file *f)
{
	unsigned sum = 0;

	for (int i = 0; i < f->ntensors; i++) {
		const struct dm_tensor *t = f->tensors[i];
		for (size_t k = 0; k < t->nbytes; k++)
			sum += ((const unsigned char *)t->data)[k];
		for (size_t k = 0; k < dm_tensor_numel(t); k++)
			sum += dm_tensor_get(t, k) != 0;
	}
	for (int i = 0; i < f->nmeta; i++)
		sum += (unsigned char)f->meta_keys[i][0] +
		    (unsigned char)f->meta_values[i][0];
	return sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dm_file *f, *g;
	struct dm_membuf b = {0};
	struct dm_sink s = {dm_membuf_write, &b};
	volatile unsigned sink;

	if (dm_file_read_mem(&f, data, size) == -1)
		return 0;
	sink = touch(f);
	(void)sink;
	/* what was read writes, and reads back the same */
	if (dm_safetensors_write(f, &s) == 0) {
		if (dm_file_read_mem(&g, b.p, b.len) == -1)
			abort();
		if (g->ntensors != f->ntensors || g->nmeta != f->nmeta)
			abort();
		dm_file_free(g);
	}
	free(b.p);
	dm_file_free(f);
	return 0;
}
