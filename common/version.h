/* version: the one version string both programs report. */
#ifndef MQS_VERSION_H
#define MQS_VERSION_H
#define MQS_VERSION "0.1.0"
#endif
