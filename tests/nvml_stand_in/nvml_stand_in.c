/*
 * A stand-in libnvidia-ml.so.1 for tests on machines without an NVIDIA GPU.
 *
 * It implements the NVML entry points the publisher reaches through NVIDIA's
 * own Python binding (nvidia-ml-py), with the C signatures of nvml.h, and
 * answers from a state file the test writes and may rewrite at any time
 * (named by NVML_STAND_IN_STATE; re-read on every call). Lines, tab-separated:
 *
 *   init<TAB>RESULT
 *   gpu<TAB>HANDLE<TAB>UUID<TAB>NAME<TAB>TEMP<TAB>POWER_MW<TAB>UTIL<TAB>SLOWDOWN<TAB>SHUTDOWN<TAB>REASONS
 *
 * RESULT and HANDLE are OK or an error name; every value is a number or an
 * error name (NOT_SUPPORTED, GPU_IS_LOST, UNKNOWN, ...), returned by the
 * function that reads it. GPU i is the i-th gpu line. Our own test code.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

enum {
    SUCCESS = 0,
    ERROR_UNINITIALIZED = 1,
    ERROR_INVALID_ARGUMENT = 2,
    ERROR_NOT_SUPPORTED = 3,
    ERROR_NO_PERMISSION = 4,
    ERROR_NOT_FOUND = 6,
    ERROR_INSUFFICIENT_SIZE = 7,
    ERROR_DRIVER_NOT_LOADED = 9,
    ERROR_GPU_IS_LOST = 15,
    ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define TEXT 96

struct value {
    nvmlReturn_t result;
    unsigned long long number;
};

struct gpu {
    nvmlReturn_t handle;
    char uuid[TEXT];
    char name[TEXT];
    struct value temperature, power_mw, utilization, slowdown, shutdown, reasons;
};

static struct gpu gpus[MAX_GPUS];
static unsigned int gpu_count;
static nvmlReturn_t init_result;
static int initialized;

static const struct {
    const char *name;
    nvmlReturn_t code;
} results[] = {
    {"OK", SUCCESS},
    {"UNINITIALIZED", ERROR_UNINITIALIZED},
    {"INVALID_ARGUMENT", ERROR_INVALID_ARGUMENT},
    {"NOT_SUPPORTED", ERROR_NOT_SUPPORTED},
    {"NO_PERMISSION", ERROR_NO_PERMISSION},
    {"NOT_FOUND", ERROR_NOT_FOUND},
    {"INSUFFICIENT_SIZE", ERROR_INSUFFICIENT_SIZE},
    {"DRIVER_NOT_LOADED", ERROR_DRIVER_NOT_LOADED},
    {"GPU_IS_LOST", ERROR_GPU_IS_LOST},
    {"UNKNOWN", ERROR_UNKNOWN},
};

static nvmlReturn_t result_named(const char *text) {
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        if (strcmp(results[i].name, text) == 0)
            return results[i].code;
    return ERROR_UNKNOWN;
}

static struct value value_of(const char *text) {
    struct value value = {SUCCESS, 0};
    char *end;
    value.number = strtoull(text, &end, 0);
    if (end == text || *end != '\0')
        value.result = result_named(text);
    return value;
}

static void copy_text(char *to, const char *from) {
    strncpy(to, from, TEXT - 1);
    to[TEXT - 1] = '\0';
}

/* Re-read the state file: the test changes GPUs while the publisher runs. */
static void load_state(void) {
    const char *path = getenv("NVML_STAND_IN_STATE");
    FILE *file = path ? fopen(path, "r") : NULL;
    char line[1024];
    gpu_count = 0;
    init_result = SUCCESS;
    if (!file)
        return;
    while (fgets(line, sizeof line, file)) {
        char *fields[12];
        int n = 0;
        line[strcspn(line, "\r\n")] = '\0';
        for (char *field = strtok(line, "\t"); field && n < 12; field = strtok(NULL, "\t"))
            fields[n++] = field;
        if (n == 2 && strcmp(fields[0], "init") == 0) {
            init_result = result_named(fields[1]);
        } else if (n == 10 && strcmp(fields[0], "gpu") == 0 && gpu_count < MAX_GPUS) {
            struct gpu *gpu = &gpus[gpu_count++];
            gpu->handle = result_named(fields[1]);
            copy_text(gpu->uuid, fields[2]);
            copy_text(gpu->name, fields[3]);
            gpu->temperature = value_of(fields[4]);
            gpu->power_mw = value_of(fields[5]);
            gpu->utilization = value_of(fields[6]);
            gpu->slowdown = value_of(fields[7]);
            gpu->shutdown = value_of(fields[8]);
            gpu->reasons = value_of(fields[9]);
        }
    }
    fclose(file);
}

/* The GPU behind a handle (handles are 1-based indices), after a fresh look at the state. */
static nvmlReturn_t gpu_of(nvmlDevice_t device, struct gpu **gpu) {
    size_t index = (size_t)device;
    if (!initialized)
        return ERROR_UNINITIALIZED;
    load_state();
    if (index < 1 || index > gpu_count)
        return ERROR_GPU_IS_LOST;
    *gpu = &gpus[index - 1];
    return (*gpu)->handle;
}

static nvmlReturn_t copy_out(const char *text, char *out, unsigned int length) {
    if (!out || strlen(text) + 1 > length)
        return ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    load_state();
    if (init_result == SUCCESS)
        initialized = 1;
    return init_result;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    if (!initialized)
        return ERROR_UNINITIALIZED;
    initialized = 0;
    return SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        if (results[i].code == result)
            return results[i].name;
    return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return copy_out("999.99.99-stand-in", version, length);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized)
        return ERROR_UNINITIALIZED;
    load_state();
    *count = gpu_count;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized)
        return ERROR_UNINITIALIZED;
    load_state();
    if (index >= gpu_count)
        return ERROR_INVALID_ARGUMENT;
    if (gpus[index].handle != SUCCESS)
        return gpus[index].handle;
    *device = (nvmlDevice_t)(size_t)(index + 1);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (!initialized)
        return ERROR_UNINITIALIZED;
    load_state();
    for (unsigned int i = 0; i < gpu_count; i++) {
        if (strcmp(gpus[i].uuid, uuid) == 0) {
            if (gpus[i].handle != SUCCESS)
                return gpus[i].handle;
            *device = (nvmlDevice_t)(size_t)(i + 1);
            return SUCCESS;
        }
    }
    return ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    struct gpu *gpu;
    nvmlReturn_t result = gpu_of(device, &gpu);
    return result != SUCCESS ? result : copy_out(gpu->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    struct gpu *gpu;
    nvmlReturn_t result = gpu_of(device, &gpu);
    return result != SUCCESS ? result : copy_out(gpu->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    struct gpu *gpu;
    nvmlReturn_t result = gpu_of(device, &gpu);
    if (result == SUCCESS)
        *index = (unsigned int)(gpu - gpus);
    return result;
}

static nvmlReturn_t read_value(nvmlDevice_t device, size_t offset, unsigned long long *out) {
    struct gpu *gpu;
    nvmlReturn_t result = gpu_of(device, &gpu);
    const struct value *value;
    if (result != SUCCESS)
        return result;
    value = (const struct value *)((const char *)gpu + offset);
    if (value->result == SUCCESS)
        *out = value->number;
    return value->result;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temperature) {
    unsigned long long value;
    nvmlReturn_t result;
    if (sensor != 0) /* NVML_TEMPERATURE_GPU */
        return ERROR_INVALID_ARGUMENT;
    result = read_value(device, offsetof(struct gpu, temperature), &value);
    if (result == SUCCESS)
        *temperature = (unsigned int)value;
    return result;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    unsigned long long value;
    nvmlReturn_t result = read_value(device, offsetof(struct gpu, power_mw), &value);
    if (result == SUCCESS)
        *milliwatts = (unsigned int)value;
    return result;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    unsigned long long value;
    nvmlReturn_t result = read_value(device, offsetof(struct gpu, utilization), &value);
    if (result == SUCCESS) {
        utilization->gpu = (unsigned int)value;
        utilization->memory = 0;
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int threshold, unsigned int *temperature) {
    unsigned long long value;
    nvmlReturn_t result;
    if (threshold == 0) /* NVML_TEMPERATURE_THRESHOLD_SHUTDOWN */
        result = read_value(device, offsetof(struct gpu, shutdown), &value);
    else if (threshold == 1) /* NVML_TEMPERATURE_THRESHOLD_SLOWDOWN */
        result = read_value(device, offsetof(struct gpu, slowdown), &value);
    else
        return ERROR_NOT_SUPPORTED;
    if (result == SUCCESS)
        *temperature = (unsigned int)value;
    return result;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    return read_value(device, offsetof(struct gpu, reasons), reasons);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    return nvmlDeviceGetCurrentClocksEventReasons(device, reasons);
}
