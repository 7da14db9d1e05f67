/* tests/fuzz/replay.c - run a fuzz target's LLVMFuzzerTestOneInput over files and directories
 * without libFuzzer (any compiler; built with ASan + UBSan by `make fuzz-replay`): replays the seed
 * corpora and any crash file a fuzzer left behind. Usage: replay PATH... (a directory: every
 * regular file in it). Exit 0 when every input ran; a finding aborts. POSIX (dirent.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return 0; }
    do {
        if (len == cap) {
            unsigned char *nb;
            cap = cap ? 2 * cap : 4096;
            nb = (unsigned char *)realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return 0; }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 1;
}

int main(int argc, char **argv) {
    int i, runs = 0, ok = 1;
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { fprintf(stderr, "replay: %s: not found\n", argv[i]); ok = 0; continue; }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            if (!d) { fprintf(stderr, "replay: cannot read %s\n", argv[i]); ok = 0; continue; }
            while ((e = readdir(d)) != NULL) {
                char p[4096];
                struct stat s2;
                if (e->d_name[0] == '.') continue;
                snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
                if (stat(p, &s2) == 0 && S_ISREG(s2.st_mode)) { if (replay_file(p)) runs++; else ok = 0; }
            }
            closedir(d);
        } else if (replay_file(argv[i])) {
            runs++;
        } else {
            ok = 0;
        }
    }
    printf("replay: %d inputs ran\n", runs);
    return ok && runs > 0 ? 0 : 1;
}
