/* replay: a main for fuzz targets built without libFuzzer: runs LLVMFuzzerTestOneInput once on every
 * file of the folders (or files) given, so the seed corpora are a plain regression test. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Runs the target on the file at path. False (message printed) when it cannot be read. */
static bool replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if(f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return false;
	}
	for(;;) {
		if(len == cap) {
			uint8_t *b = realloc(buf, cap ? cap * 2 : 4096);
			if(b == NULL) {
				fprintf(stderr, "replay: %s: out of memory\n", path);
				free(buf);
				fclose(f);
				return false;
			}
			buf = b;
			cap = cap ? cap * 2 : 4096;
		}
		size_t rd = fread(buf + len, 1, cap - len, f);
		len += rd;
		if(rd == 0) break;
	}
	bool ok = !ferror(f);
	fclose(f);
	if(!ok) {
		fprintf(stderr, "replay: %s: read error\n", path);
	} else {
		/* A copy of exactly len bytes, so that ASan sees a read past the input's end. */
		uint8_t *exact = malloc(len ? len : 1);
		if(exact == NULL) {
			fprintf(stderr, "replay: %s: out of memory\n", path);
			ok = false;
		} else {
			if(len) memcpy(exact, buf, len);
			/* Named first: a failed property aborts. */
			printf("replay: %s (%zu bytes)\n", path, len);
			fflush(stdout);
			LLVMFuzzerTestOneInput(exact, len);
			free(exact);
		}
	}
	free(buf);
	return ok;
}

/* Runs every regular file of dir (or dir itself when it is a file); adds to *count. */
static bool replay_path(const char *dir, long *count)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	bool ok = true;

	if(stat(dir, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return false;
	}
	if(!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(dir);
	}
	d = opendir(dir);
	if(d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return false;
	}
	while((de = readdir(d)) != NULL) {
		char path[4096];

		if(de->d_name[0] == '.') continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if(stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
		(*count)++;
		if(!replay_file(path)) ok = false;
	}
	closedir(d);
	return ok;
}

int main(int argc, char **argv)
{
	long count = 0;
	bool ok = true;

	if(argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for(int i = 1; i < argc; i++) {
		if(!replay_path(argv[i], &count)) ok = false;
	}
	if(count == 0) {
		fprintf(stderr, "replay: no input files\n");
		return 1;
	}
	printf("replay: %ld inputs, all properties held\n", count);
	return ok ? 0 : 1;
}
