"""The build runner: what ``runner/run_job.sh`` (a root-owned shim) runs as the engineer.

    run_job.sh build <job_id>     a BuildOrder (JSON) on stdin: clone, build, collect, status
    run_job.sh cancel <job_id>    a JobAddress on stdin: stop the build (the runner escalates)
    run_job.sh purge <job_id>     a JobAddress on stdin: delete the job directory (retention)
    run_job.sh check-login        the password on stdin: exit 0 accepted, 1 refused
    run_job.sh store-token        the GitLab token on stdin -> ~/.autobuild/gitlab_token
    run_job.sh has-token          prints yes or no

Everything the service says travels on argv and stdin and is re-validated with the domain's
own rules (``autobuild.domain.orders``); the job directory (``autobuild.domain.layout``) is
created exclusively and then used only through the file descriptors opened at the start.
This package imports the domain and the /proc parser only: no web framework, no service
configuration.
"""
