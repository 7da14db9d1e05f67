/* One line per test group; each group is a function TP(name) in tests/test_all.c's includes. */
TEST_GROUP(test_core)
TEST_GROUP(test_ops)
TEST_GROUP(test_npy)
TEST_GROUP(test_compare)
TEST_GROUP(test_optim)
TEST_GROUP(test_ckpt)
TEST_GROUP(test_hc)
TEST_GROUP(test_gpt)
TEST_GROUP(test_matmul)
/* test_matmul.c again, in objects built for other ISAs (tests/test_matmul_isa.c, see Makefile) */
TEST_GROUP(test_matmul_nosimd)
TEST_GROUP(test_matmul_avx2)
TEST_GROUP(test_matmul_avx512)
