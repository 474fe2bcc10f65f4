"""Pipeline generation (Jenkinsfile + multibranch job per biomarker) and the Jenkins sync that applies it."""
