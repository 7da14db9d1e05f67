/* tests/fuzz/fuzz_ckpt_main.c - libFuzzer entry for the checkpoint reader: every input goes to the
 * float32 and the float64 build of mhc_checkpoint_parse (tests/fuzz/fuzz_ckpt.c, compiled twice). */
#include <stddef.h>
#include <stdint.h>

int fuzz_ckpt_f32(const unsigned char *data, size_t size);
int fuzz_ckpt_f64(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_ckpt_f32(data, size);
    fuzz_ckpt_f64(data, size);
    return 0;
}
