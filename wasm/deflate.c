/*
 * The WebAssembly face of libdeflate's compressor (vendor/libdeflate), built by scripts/build-wasm.mjs into
 * src/oci/deflate-wasm.ts and run by the deflate workers (src/oci/deflate-worker.ts).
 *
 * There is no libc here: memory comes from a bump allocator over the module's linear memory, growing it as needed.
 * Nothing is ever freed. A worker allocates one compressor per level and one input and one output area, replaced
 * (and the old ones abandoned) only when a larger part arrives, so the memory stays within about twice the largest
 * part plus the compressors.
 */
#include <stddef.h>
#include "../vendor/libdeflate/libdeflate.h"

extern unsigned char __heap_base;
static size_t top;

static void *bump(size_t n)
{
	if (top == 0)
		top = (size_t)&__heap_base;
	top = (top + 15) & ~(size_t)15;
	size_t need = top + n;
	size_t have = __builtin_wasm_memory_size(0) * 65536;
	if (need > have &&
	    __builtin_wasm_memory_grow(0, (need - have + 65535) / 65536) == (size_t)-1)
		return NULL;
	void *p = (void *)top;
	top = need;
	return p;
}

static void keep(void *p)
{
	(void)p;
}

/* n bytes of linear memory, or 0 when it cannot grow that far. */
__attribute__((export_name("alloc"))) void *alloc(size_t n)
{
	return bump(n);
}

/* A compressor for a level from 1 to 12, or 0. */
__attribute__((export_name("compressor"))) void *compressor(int level)
{
	struct libdeflate_options options = { sizeof(options), bump, keep };
	return libdeflate_alloc_compressor_ex(level, &options);
}

/* The most bytes `deflate` can write for n bytes of input. */
__attribute__((export_name("bound"))) size_t bound(void *c, size_t n)
{
	return libdeflate_deflate_compress_bound(c, n);
}

/* Raw DEFLATE (RFC 1951) of in[0..n) into out; returns its size, 0 if it did not fit in avail. */
__attribute__((export_name("deflate"))) size_t deflate(void *c, const void *in, size_t n, void *out, size_t avail)
{
	return libdeflate_deflate_compress(c, in, n, out, avail);
}
